package restart

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// World is a node for these tests: a `file:` source folder, a keeper and
// a `secretfs csi --keeper` plugin serving kubelet-shaped volumes. The
// upgrade test (sanity/upgrade) drives the same world across releases.
type World struct {
	T       testing.TB
	Dir     string
	Src     string
	Sock    string
	Keeper  string
	Plugin  *exec.Cmd
	Logs    []string
	Targets []string
	Reqs    []*csi.NodePublishVolumeRequest
	// Env is added to the plugin's environment (SECRETFS_NO_RESEND=1).
	Env []string
}

// NewWorld makes a world in a fresh folder (kept when the test fails).
func NewWorld(t testing.TB) *World {
	dir, err := os.MkdirTemp("", "secretfs-restart-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	w := &World{T: t, Dir: dir, Src: filepath.Join(dir, "src"), Sock: filepath.Join(dir, "csi.sock"), Keeper: filepath.Join(dir, "keeper.sock")}
	os.Mkdir(w.Src, 0o700)
	return w
}

// Build builds this tree's secretfs into dir.
func Build(t testing.TB, dir, name string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/secretfs/secretfs/cmd/secretfs").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// StartKeeper runs bin's keeper on w.Keeper and waits for its socket.
func (w *World) StartKeeper(bin string) *exec.Cmd {
	w.T.Helper()
	os.Remove(w.Keeper)
	log, err := os.Create(filepath.Join(w.Dir, fmt.Sprintf("keeper-%d.log", len(w.Logs))))
	if err != nil {
		w.T.Fatal(err)
	}
	w.Logs = append(w.Logs, log.Name())
	k := exec.Command(bin, "keeper", "--socket", w.Keeper)
	k.Stderr = log
	if err := k.Start(); err != nil {
		w.T.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(w.Keeper); err == nil || time.Now().After(deadline) {
			return k
		}
	}
}

// Secret writes Secret s<i> with both keys at generation gen.
func (w *World) Secret(i, gen int) {
	body := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s%d\n  namespace: app\nstringData:\n  a: g%d\n  b: g%d\n", i, gen, gen)
	tmp := filepath.Join(w.Src, fmt.Sprintf(".s%d.tmp", i))
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		w.T.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(w.Src, fmt.Sprintf("s%d.yaml", i))); err != nil {
		w.T.Fatal(err)
	}
}

// Start runs bin as the plugin.
func (w *World) Start(bin string) {
	w.T.Helper()
	log, err := os.Create(filepath.Join(w.Dir, fmt.Sprintf("plugin-%d.log", len(w.Logs))))
	if err != nil {
		w.T.Fatal(err)
	}
	w.Logs = append(w.Logs, log.Name())
	w.Plugin = exec.Command(bin, "csi", "--endpoint", "unix://"+w.Sock, "--node-id", "n1",
		"--source", "file:"+w.Src, "--keeper", w.Keeper, "--mount-root", w.Dir)
	w.Plugin.Stderr = log
	w.Plugin.Env = append(os.Environ(), w.Env...)
	if err := w.Plugin.Start(); err != nil {
		w.T.Fatal(err)
	}
}

// Stop signals the plugin and waits up to 10s for it to exit.
func (w *World) Stop(sig syscall.Signal) error {
	w.Plugin.Process.Signal(sig)
	exited := make(chan error, 1)
	go func(c *exec.Cmd) { exited <- c.Wait() }(w.Plugin)
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the plugin did not exit within 10s of %v", sig)
	}
}

// LastLog is the text of the newest log.
func (w *World) LastLog() string {
	b, _ := os.ReadFile(w.Logs[len(w.Logs)-1])
	return string(b)
}

// Cleanup stops the plugin, detaches what the world mounted and logs the
// logs of a failed test.
func (w *World) Cleanup(keeper *exec.Cmd) {
	if w.Plugin != nil && w.Plugin.ProcessState == nil {
		w.Stop(syscall.SIGTERM)
	}
	for _, tg := range w.Targets {
		syscall.Unmount(tg, syscall.MNT_DETACH)
	}
	if keeper != nil {
		keeper.Process.Kill()
		keeper.Wait()
	}
	if w.T.Failed() {
		for _, l := range w.Logs {
			b, _ := os.ReadFile(l)
			w.T.Logf("%s (last 3000 bytes):\n%s", filepath.Base(l), Tail(string(b), 3000))
		}
	} else {
		os.RemoveAll(w.Dir)
	}
}

// Call runs one node call on a fresh connection, retrying while the
// plugin (re)starts.
func (w *World) Call(f func(csi.NodeClient) error) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := grpc.NewClient("unix://"+w.Sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err == nil {
			err = f(csi.NewNodeClient(conn))
			conn.Close()
		}
		if err == nil || time.Now().After(deadline) || !strings.Contains(err.Error(), "Unavailable") {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Request is kubelet's publish request of volume i (Secret s<i>).
func (w *World) Request(i int) *csi.NodePublishVolumeRequest {
	uid := fmt.Sprintf("pod-%d", i)
	sum := sha256.Sum256([]byte(uid + "secret"))
	parent := filepath.Join(w.Dir, "pods", uid, "volumes", "kubernetes.io~csi", "secret")
	os.MkdirAll(parent, 0o750)
	return &csi.NodePublishVolumeRequest{
		VolumeId:   "csi-" + hex.EncodeToString(sum[:]),
		TargetPath: filepath.Join(parent, "mount"),
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		Readonly: true,
		VolumeContext: map[string]string{"secretName": fmt.Sprintf("s%d", i),
			"csi.storage.k8s.io/pod.name": uid, "csi.storage.k8s.io/pod.namespace": "app",
			"csi.storage.k8s.io/pod.uid": uid, "csi.storage.k8s.io/ephemeral": "true"},
	}
}

// Static reports whether volume i is fed by the request's `secrets`
// (nodePublishSecretRef) instead of a named Secret: every fifth one.
func Static(i int) bool { return i%5 == 4 }

// SetStatic makes req carry its data, at generation gen.
func SetStatic(req *csi.NodePublishVolumeRequest, gen int) {
	delete(req.VolumeContext, "secretName")
	v := fmt.Sprintf("g%d", gen)
	req.Secrets = map[string]string{"a": v, "b": v}
}

// Publish sends req.
func (w *World) Publish(req *csi.NodePublishVolumeRequest) error {
	return w.Call(func(c csi.NodeClient) error {
		_, err := c.NodePublishVolume(context.Background(), req)
		return err
	})
}

// PublishAll publishes volumes 0..n-1 (every fifth one static) and
// records their requests and targets.
func (w *World) PublishAll(n int) { w.PublishConcurrently(n, 1) }

// PublishConcurrently publishes volumes 0..n-1 with inflight publishes
// under way at once, as kubelet does for a node full of new Pods.
func (w *World) PublishConcurrently(n, inflight int) {
	w.T.Helper()
	reqs := make([]*csi.NodePublishVolumeRequest, n)
	for i := range n {
		w.Secret(i, 0)
		reqs[i] = w.Request(i)
		if Static(i) {
			SetStatic(reqs[i], 0)
		}
	}
	errs := make([]error, n)
	slots := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			// kubelet retries a failed publish; so does this, for a
			// Secret written a moment ago that a release's file source
			// has not seen yet (its parse cache keys on coarse stamps).
			err := w.Publish(reqs[i])
			for try := 0; status.Code(err) == codes.NotFound && try < 10; try++ {
				time.Sleep(100 * time.Millisecond)
				err = w.Publish(reqs[i])
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			w.T.Fatalf("publish %d: %v", i, err)
		}
		w.Reqs, w.Targets = append(w.Reqs, reqs[i]), append(w.Targets, reqs[i].TargetPath)
		// One read while the plugin serves, so that the kernel learns
		// FLUSH is not supported on this connection (ENOSYS; it then
		// never sends it again). Until then every close sends FLUSH,
		// even the close-on-exec of the copies of the readers' open
		// files in a child this process forks: a child that would
		// become the next plugin then waits in execve for an answer
		// only a plugin gives (the TestPluginRestarts hang of CI).
		if _, err := ReadVolume(reqs[i].TargetPath); err != nil {
			w.T.Fatalf("first read of volume %d: %v", i, err)
		}
	}
}

// Republish sends every request again, as kubelet does (requiresRepublish).
func (w *World) Republish() error {
	for _, req := range w.Reqs {
		if err := w.Publish(req); err != nil {
			return err
		}
	}
	return nil
}

// UnpublishAll unpublishes every volume; it returns the first error.
func (w *World) UnpublishAll() error {
	for _, req := range w.Reqs {
		if err := w.Call(func(c csi.NodeClient) error {
			_, err := c.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: req.TargetPath})
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// ReadVolume reads a and b through one resolution of ..data; they must
// come from one version.
func ReadVolume(target string) (string, error) {
	d, err := os.Open(filepath.Join(target, "..data"))
	if err != nil {
		return "", err
	}
	defer d.Close()
	var vals [2]string
	for i, k := range []string{"a", "b"} {
		fd, err := unix.Openat(int(d.Fd()), k, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("openat %s: %w", k, err)
		}
		buf := make([]byte, 32)
		n, err := unix.Read(fd, buf)
		unix.Close(fd)
		if err != nil {
			return "", err
		}
		vals[i] = string(buf[:n])
	}
	if vals[0] != vals[1] {
		return "", fmt.Errorf("mixed versions: a=%s b=%s", vals[0], vals[1])
	}
	return vals[0], nil
}

// Readers loop over every volume until stopped, counting failures and
// the longest single read.
type Readers struct {
	stop     atomic.Bool
	Reads    atomic.Int64
	Failures atomic.Int64
	slowest  atomic.Int64 // ns, since the last Slowest
	mu       sync.Mutex
	first    error
	took     []time.Duration // since the last Window
	wg       sync.WaitGroup
}

// StartReaders starts n readers over targets; check judges each value.
func StartReaders(targets []string, n int, check func(i int, v string) error) *Readers {
	r := &Readers{}
	for k := range n {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for i := k % len(targets); !r.stop.Load(); i = (i + 1) % len(targets) {
				t0 := time.Now()
				v, err := ReadVolume(targets[i])
				took := time.Since(t0)
				if d := took.Nanoseconds(); d > r.slowest.Load() {
					r.slowest.Store(d)
				}
				r.mu.Lock()
				if len(r.took) < 1<<20 {
					r.took = append(r.took, took)
				}
				r.mu.Unlock()
				if err == nil {
					err = check(i, v)
				}
				if err != nil {
					r.Failures.Add(1)
					r.mu.Lock()
					if r.first == nil {
						r.first = fmt.Errorf("volume %d: %w", i, err)
					}
					r.mu.Unlock()
				}
				r.Reads.Add(1)
			}
		}()
	}
	return r
}

// Window returns the sorted durations of the reads since the last call,
// and starts over.
func (r *Readers) Window() []time.Duration {
	r.mu.Lock()
	w := r.took
	r.took = nil
	r.mu.Unlock()
	slices.Sort(w)
	return w
}

// Slowest returns the longest read since the last call, and starts over.
func (r *Readers) Slowest() time.Duration { return time.Duration(r.slowest.Swap(0)) }

// Stop ends the readers; it returns the first failure.
func (r *Readers) Stop() error {
	r.stop.Store(true)
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}

// Pct is the q-quantile of sorted s.
func Pct(s []time.Duration, q float64) time.Duration {
	i := int(float64(len(s))*q+0.5) - 1
	return s[max(0, min(i, len(s)-1))].Round(time.Millisecond)
}

// CountMounts counts the mounts under a folder.
func CountMounts(under string) int {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Count(string(b), " "+under+"/")
}

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Kill sends sig to a process the world started, by its PID, and waits
// for it when the signal ends it.
func Kill(t testing.TB, c *exec.Cmd, sig syscall.Signal) {
	t.Helper()
	if err := c.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		c.Wait()
	}
}
