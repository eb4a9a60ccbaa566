package node

import (
	"github.com/moby/sys/mountinfo"
	"github.com/secretfs/secretfs/sanity/child"

	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/secretfs/secretfs/sanity/cluster"
)

const (
	// DefaultName is the node's name (kubelet --hostname-override).
	DefaultName = "secretfs-node"
	// BusyboxImage runs the test containers: Debian's busybox-static with
	// every applet linked in /bin, root and nobody in /etc/passwd.
	BusyboxImage = "secretfs.local/busybox:e2e"
	// PauseImage is the sandbox image: the same rootfs, /bin/sleep infinity.
	PauseImage = "secretfs.local/pause:e2e"
)

//go:embed images.sh
var imagesScript string

// Options tune StartNode; the zero value is fine.
type Options struct {
	Name string       // node name; default DefaultName
	Log  *slog.Logger // default slog.Default()
	// KubeletConfig is appended to the generated KubeletConfiguration YAML
	// (top-level fields, e.g. "syncFrequency: 10s\n").
	KubeletConfig string
}

// Timings of StartNode, each measured from its start (after packages and
// images, which are cached after the first run).
type Timings struct {
	Prepare       time.Duration // packages + image tarballs present
	Containerd    time.Duration // containerd answers
	Images        time.Duration // images imported
	KubeletStart  time.Duration // kubelet spawned
	NodeReady     time.Duration // Node Ready condition True
	PluginRunning time.Duration // set by StartPlugin: plugin registered (CSINode lists it), from its spawn
}

// Node is a running containerd + kubelet registered with a Cluster.
type Node struct {
	C    *cluster.Cluster
	Name string
	Dir  string // everything lives here; removed by Stop unless Keep

	KubeletRoot     string // --root-dir
	PodLogsDir      string // KubeletConfiguration podLogsDir
	ContainerdSock  string
	RegistrationDir string // KubeletRoot/plugins_registry
	Timings         Timings
	// Keep leaves Dir (logs) in place at Stop, e.g. after a failed test.
	Keep bool

	opts       Options
	log        *slog.Logger
	containerd *proc
	kubelet    *proc
	plugins    []*proc
	sysctls    map[string]string
	hostBefore map[string]bool
	client     kubernetes.Interface
	lock       *os.File
}

// sysctls kubelet sets at start (its container manager's
// setupKernelTunables) and
// Stop restores.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// Host paths kubelet or containerd create outside their configured folders.
var hostPaths = []string{
	"/var/lib/kubelet", "/var/lib/kubelet/device-plugins", "/var/log/containers",
	"/run/containerd", "/run/containerd/s", "/run/containerd/runc",
	"/sys/fs/cgroup/cpu/kubepods", "/sys/fs/cgroup/memory/kubepods",
}

// StartNode starts containerd and kubelet with their state in dir (a new
// temp folder if ""), registers the node with c and waits for Ready.
func StartNode(ctx context.Context, c *cluster.Cluster, dir string, opts Options) (n *Node, err error) {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	t0 := time.Now()
	if err := EnsurePackages(ctx, opts.Log); err != nil {
		return nil, err
	}
	imgDir, err := EnsureImages(ctx)
	if err != nil {
		return nil, err
	}
	// One node per machine at a time: kubelets share the kubepods cgroups
	// and the sysctls; a second StartNode waits for the first Stop.
	lock, err := lockMachine(ctx, opts.Log)
	if err != nil {
		return nil, err
	}
	if dir == "" {
		// Short: unix socket paths below it must stay under 108 bytes.
		if dir, err = os.MkdirTemp("", "sfsnode-"); err != nil {
			lock.Close()
			return nil, err
		}
	}
	n = &Node{C: c, Name: opts.Name, Dir: dir, opts: opts, log: opts.Log, client: c.Client(), lock: lock,
		KubeletRoot: filepath.Join(dir, "kubelet"), PodLogsDir: filepath.Join(dir, "pod-logs"),
		ContainerdSock: filepath.Join(dir, "containerd", "containerd.sock")}
	n.RegistrationDir = filepath.Join(n.KubeletRoot, "plugins_registry")
	n.Timings.Prepare = time.Since(t0)
	t0 = time.Now()
	defer func() {
		if err != nil {
			n.Keep = true
			n.Stop()
			err = fmt.Errorf("%w (node folder kept: %s)", err, dir)
		}
	}()
	n.hostBefore = map[string]bool{}
	for _, p := range hostPaths {
		_, err := os.Lstat(p)
		n.hostBefore[p] = err == nil
	}
	for _, d := range []string{"containerd/root", "containerd/state", "containerd/opt", "cni/net.d",
		"kubelet", "kubelet-pki", "pod-logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return n, err
		}
	}

	// CNI config before containerd starts: its CRI plugin reads conf_dir
	// at start and the node reports NetworkReady only with a network.
	if err := os.WriteFile(filepath.Join(dir, "cni/net.d/10-loopback.conflist"), []byte(cniConflist), 0o644); err != nil {
		return n, err
	}
	if err := os.WriteFile(filepath.Join(dir, "containerd/config.toml"), []byte(n.containerdConfig()), 0o644); err != nil {
		return n, err
	}
	n.containerd, err = spawn(dir, "containerd", os.Environ(), "containerd",
		"--config", filepath.Join(dir, "containerd/config.toml"))
	if err != nil {
		return n, err
	}
	if err := n.waitFor(ctx, n.containerd, 30*time.Second, func() error {
		_, err := n.ctr(ctx, "version")
		return err
	}); err != nil {
		return n, fmt.Errorf("containerd: %w", err)
	}
	n.Timings.Containerd = time.Since(t0)
	for _, img := range []string{"pause.tar", "busybox.tar"} {
		if out, err := n.ctr(ctx, "-n", "k8s.io", "images", "import", filepath.Join(imgDir, img)); err != nil {
			return n, fmt.Errorf("import %s: %w: %s", img, err, out)
		}
	}
	n.Timings.Images = time.Since(t0)

	n.sysctls = map[string]string{}
	for _, s := range kubeletSysctls {
		if b, err := os.ReadFile("/proc/sys/" + s); err == nil {
			n.sysctls[s] = strings.TrimSpace(string(b))
		}
	}
	kubeconfig := filepath.Join(dir, "kubelet.kubeconfig")
	if err := c.WriteKubeconfig(kubeconfig, c.AdminToken); err != nil {
		return n, err
	}
	ports, err := child.FreePorts(2)
	if err != nil {
		return n, err
	}
	cfgPath := filepath.Join(dir, "kubelet-config.yaml")
	if err := os.WriteFile(cfgPath, []byte(n.kubeletConfig(ports[0], ports[1])), 0o644); err != nil {
		return n, err
	}
	// No /usr/sbin (nor /sbin, its link on Debian): kubelet then finds no
	// iptables and leaves the host's chains alone.
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir}
	n.kubelet, err = spawn(dir, "kubelet", env, filepath.Join(cluster.BinDir(), "kubelet"),
		"--config="+cfgPath, "--kubeconfig="+kubeconfig,
		"--root-dir="+n.KubeletRoot, "--cert-dir="+filepath.Join(dir, "kubelet-pki"),
		"--hostname-override="+n.Name, "--v=2")
	if err != nil {
		return n, err
	}
	n.Timings.KubeletStart = time.Since(t0)
	if err := n.waitFor(ctx, n.kubelet, 2*time.Minute, func() error {
		node, err := n.client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("node %s Ready=%s: %s", n.Name, cond.Status, cond.Message)
			}
		}
		return fmt.Errorf("node %s has no Ready condition yet", n.Name)
	}); err != nil {
		return n, err
	}
	n.Timings.NodeReady = time.Since(t0)
	n.log.Info("node ready", "name", n.Name, "dir", dir, "containerd", n.Timings.Containerd.Round(time.Millisecond),
		"images", n.Timings.Images.Round(time.Millisecond), "ready", n.Timings.NodeReady.Round(time.Millisecond))
	return n, n.EnsureNamespace(ctx, "default")
}

const cniConflist = `{
  "cniVersion": "1.0.0",
  "name": "secretfs-loopback",
  "plugins": [{"type": "loopback"}]
}
`

func (n *Node) containerdConfig() string {
	d := filepath.Join(n.Dir, "containerd")
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  # This VM drops CAP_SYS_RESOURCE even for root: without this runc fails
  # with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[8]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[7]q
`, filepath.Join(d, "root"), filepath.Join(d, "state"), n.ContainerdSock, n.ContainerdSock+".ttrpc",
		filepath.Join(d, "opt"), PauseImage, filepath.Join(n.Dir, "cni/net.d"), filepath.Join(d, "runc"))
}

func (n *Node) kubeletConfig(port, healthzPort int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://%[1]s
podLogsDir: %[2]s
address: 127.0.0.1
port: %[3]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[4]d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
registerNode: true
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
%[5]s`, n.ContainerdSock, n.PodLogsDir, port, healthzPort, n.opts.KubeletConfig)
}

// ctr runs ctr against this node's containerd.
func (n *Node) ctr(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "ctr", append([]string{"--address", n.ContainerdSock}, args...)...).CombinedOutput()
}

// waitFor polls check every 100 ms until it succeeds, p exits or timeout.
func (n *Node) waitFor(ctx context.Context, p *proc, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited (%v); log %s:\n%s", p.Name, p.Cmd.ProcessState, p.Log, p.Tail())
		case <-ctx.Done():
			return fmt.Errorf("%s: %v: %w; log %s", p.Name, err, ctx.Err(), p.Log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Client is an admin clientset.
func (n *Node) Client() kubernetes.Interface { return n.client }

// EnsureNamespace creates namespace ns (if missing) and its "default"
// ServiceAccount (no controller-manager makes it) without token automount.
func (n *Node) EnsureNamespace(ctx context.Context, ns string) error {
	if _, err := n.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return n.EnsureServiceAccount(ctx, ns, "default")
}

// EnsureServiceAccount creates ns/name without token automount.
func (n *Node) EnsureServiceAccount(ctx context.Context, ns, name string) error {
	no := false
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}, AutomountServiceAccountToken: &no}
	if _, err := n.client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// Stop stops every process by PID (kubelet, the containers, containerd and
// its shims, plugins), detaches every mount under Dir, restores the sysctls
// and host folders kubelet changed, and removes Dir unless Keep. Safe to call
// more than once.
func (n *Node) Stop() {
	if n == nil {
		return
	}
	ctx := context.Background()
	if err := n.kubelet.Stop(15 * time.Second); err != nil {
		n.log.Warn("kubelet", "err", err)
	}
	if n.containerd != nil && n.containerd.Alive() {
		// Kill and delete every task so that each shim exits by itself.
		if out, err := n.ctr(ctx, "-n", "k8s.io", "tasks", "ls"); err == nil {
			var ids []string
			for i, l := range strings.Split(string(out), "\n") {
				if f := strings.Fields(l); i > 0 && len(f) > 0 {
					ids = append(ids, f[0])
				}
			}
			if len(ids) > 0 {
				if out, err := n.ctr(ctx, append([]string{"-n", "k8s.io", "tasks", "delete", "--force"}, ids...)...); err != nil {
					n.log.Warn("ctr tasks delete", "err", err, "out", string(out))
				}
			}
		}
		if err := n.containerd.Stop(10 * time.Second); err != nil {
			n.log.Warn("containerd", "err", err)
		}
	}
	// Whatever survived: container inits and shims, by their PID files.
	tasks, _ := filepath.Glob(filepath.Join(n.Dir, "containerd/state/io.containerd.runtime.v2.task/*/*"))
	for _, t := range tasks {
		killPIDFile(filepath.Join(t, "init.pid"), "")
		killPIDFile(filepath.Join(t, "shim.pid"), "containerd-shim")
	}
	for _, p := range n.plugins {
		if err := p.Stop(10 * time.Second); err != nil {
			n.log.Warn("plugin", "err", err)
		}
	}
	n.plugins = nil
	if n.Dir != "" {
		if left := unmountUnder(n.Dir); len(left) > 0 {
			n.log.Warn("mounts left", "mounts", left)
		}
	}
	for s, v := range n.sysctls {
		if b, err := os.ReadFile("/proc/sys/" + s); err == nil && strings.TrimSpace(string(b)) != v {
			if err := os.WriteFile("/proc/sys/"+s, []byte(v), 0o644); err != nil {
				n.log.Warn("restore sysctl", "name", s, "err", err)
			}
		}
	}
	n.sysctls = nil
	n.restoreHost()
	if !n.Keep && n.Dir != "" {
		if err := os.RemoveAll(n.Dir); err != nil {
			n.log.Warn("remove node folder", "err", err)
		}
	}
	if n.lock != nil {
		n.lock.Close() // releases the flock
		n.lock = nil
	}
}

// lockMachine takes an exclusive flock on ImageDir()/../node.lock, waiting
// (and saying so) while another node runs.
func lockMachine(ctx context.Context, log *slog.Logger) (*os.File, error) {
	path := filepath.Join(filepath.Dir(ImageDir()), "node.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for said := false; ; said = true {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			return f, nil
		} else if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !said {
			log.Info("another node runs on this machine; waiting for it", "lock", path)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s (another node runs here): %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// restoreHost removes what kubelet and containerd created outside Dir.
func (n *Node) restoreHost() {
	if n.hostBefore == nil {
		return
	}
	// /var/log/containers/<pod>_<ns>_<ctr>-<id>.log links into our pod logs.
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if t, err := os.Readlink(l); err == nil && strings.HasPrefix(t, n.Dir+"/") {
			os.Remove(l)
		}
	}
	// kubepods cgroups (cgroup v1, cgroupfs driver): empty once the
	// containers are dead; rmdir deepest first.
	for _, ctl := range []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "pids", "systemd", "net_cls", "perf_event", "unified"} {
		root := filepath.Join("/sys/fs/cgroup", ctl, "kubepods")
		if n.hostBefore["/sys/fs/cgroup/cpu/kubepods"] {
			break
		}
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			unix.Rmdir(dirs[i])
		}
	}
	// Empty folders only: never anything another user may have put there.
	for i := len(hostPaths) - 1; i >= 0; i-- {
		p := hostPaths[i]
		if n.hostBefore[p] || strings.HasPrefix(p, "/sys/") {
			continue
		}
		if p == "/var/lib/kubelet/device-plugins" {
			os.Remove(filepath.Join(p, "kubelet.sock"))
		}
		os.Remove(p)
	}
	n.hostBefore = nil
}

// unmountUnder detaches every mount at or below dir, deepest first, and
// returns those still there.
func unmountUnder(dir string) []string {
	var left []string
	for range 5 {
		left = mountsUnder(dir)
		if len(left) == 0 {
			return nil
		}
		for _, m := range left {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	return mountsUnder(dir)
}

func mountsUnder(dir string) []string {
	// moby's parser undoes mountinfo's octal escapes (\040 for a space).
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil
	}
	var ms []string
	for _, mi := range infos {
		ms = append(ms, mi.Mountpoint)
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	return ms
}

// EnsurePackages installs (apt-get, once) what the node needs from Debian.
func EnsurePackages(ctx context.Context, log *slog.Logger) error {
	want := []string{"containerd", "runc", "containernetworking-plugins", "umoci", "skopeo", "busybox-static"}
	var missing []string
	for _, p := range want {
		out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("packages %v missing and not root to install them", missing)
	}
	log.Info("installing packages", "packages", missing)
	// Stop a running daemon the package scripts might start is not needed:
	// in this VM there is no init system to start containerd.service.
	script := "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends " + strings.Join(missing, " ")
	cmd := exec.CommandContext(ctx, "flock", "/var/lib/dpkg/secretfs-node.lock", "sh", "-c", script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %v: %w\n%s", missing, err, out)
	}
	return nil
}

// ImageDir holds the image tarballs built by EnsureImages.
func ImageDir() string { return filepath.Join(filepath.Dir(cluster.CacheDir()), "node-images") }

// EnsureImages builds the busybox and pause image tarballs once (images.sh;
// about a second) and returns their folder.
func EnsureImages(ctx context.Context) (string, error) {
	dir := ImageDir()
	if fileExists(filepath.Join(dir, "busybox.tar")) && fileExists(filepath.Join(dir, "pause.tar")) {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "flock", filepath.Join(dir, ".lock"), "bash", "-c", imagesScript, "images.sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building images: %w\n%s", err, out)
	}
	return dir, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
