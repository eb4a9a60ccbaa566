package node

import (
	"github.com/secretfs/secretfs/sanity/child"

	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/secretfs/secretfs/sanity/cluster"
)

// What the DaemonSet of deploy/ needs beyond the bare control plane of
// package cluster: privileged Pods allowed (kube-apiserver
// --allow-privileged, as every real cluster sets), a kube-controller-manager
// (DaemonSet, ServiceAccount and root CA ConfigMap controllers), and the
// plugin as a container image.

// APIServer is a kube-apiserver restarted by WithAPIServerFlags.
type APIServer struct {
	c *cluster.Cluster
	p *proc
}

// WithAPIServerFlags restarts c's kube-apiserver on the same port with its
// flags (read from /proc/PID/cmdline) plus extra, e.g.
// "--allow-privileged=true", and waits for /readyz. Restore puts the
// original back. If it already runs with every flag of extra, nothing is
// restarted. etcd and its data are kept; clients reconnect.
func WithAPIServerFlags(ctx context.Context, c *cluster.Cluster, extra ...string) (*APIServer, error) {
	pid, ok := c.PIDs()["kube-apiserver"]
	if !ok {
		return nil, errors.New("kube-apiserver is not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(argv) < 2 {
		return nil, fmt.Errorf("kube-apiserver cmdline: %q", b)
	}
	have := strings.Join(argv[1:], "\x00") + "\x00"
	missing := false
	for _, f := range extra {
		missing = missing || !strings.Contains("\x00"+have, "\x00"+f+"\x00")
	}
	if !missing {
		return &APIServer{c: c}, nil // already running with them: Restore is a no-op
	}
	// With kubelet's watches open it may take SIGKILL (StopAPIServer then
	// says so): stopped either way.
	c.StopAPIServer()
	if _, ok := c.PIDs()["kube-apiserver"]; ok {
		return nil, errors.New("kube-apiserver did not stop")
	}
	a := &APIServer{c: c}
	a.p, err = spawn(c.Dir, "kube-apiserver-extra", os.Environ(), argv[0], append(argv[1:], extra...)...)
	if err != nil {
		c.StartAPIServer(ctx)
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(c.RestConfig())
	if err == nil {
		err = waitProc(ctx, a.p, 2*time.Minute, func() error {
			_, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			return err
		})
	}
	if err != nil {
		a.Restore(ctx)
		return nil, err
	}
	return a, nil
}

// Restore stops the restarted kube-apiserver and starts the original one.
func (a *APIServer) Restore(ctx context.Context) error {
	if a == nil || a.p == nil {
		return nil
	}
	a.p.Stop(10 * time.Second)
	a.p = nil
	return a.c.StartAPIServer(ctx)
}

// ControllerManager is a kube-controller-manager running against a Cluster.
type ControllerManager struct {
	p *proc
}

// StartControllerManager runs kube-controller-manager (built by
// `sanity/cluster/build.sh kube-controller-manager`) against c with only
// controllers (e.g. "daemonset", "serviceaccount", "root-ca-cert-publisher"),
// an admin kubeconfig, the cluster's CA as root CA and its service-account
// key; log in dir/kube-controller-manager.log. It returns once the process
// answers its health check.
func StartControllerManager(ctx context.Context, c *cluster.Cluster, dir string, controllers ...string) (*ControllerManager, error) {
	bin := filepath.Join(cluster.BinDir(), "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%w (run sanity/cluster/build.sh kube-controller-manager)", err)
	}
	kubeconfig := filepath.Join(dir, "kcm.kubeconfig")
	if err := c.WriteKubeconfig(kubeconfig, c.AdminToken); err != nil {
		return nil, err
	}
	ca := filepath.Join(dir, "kcm-root-ca.crt")
	if err := os.WriteFile(ca, c.RestConfig().TLSClientConfig.CAData, 0o644); err != nil {
		return nil, err
	}
	ports, err := child.FreePorts(1)
	if err != nil {
		return nil, err
	}
	p, err := spawn(dir, "kube-controller-manager", os.Environ(), bin,
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig, "--authorization-kubeconfig="+kubeconfig,
		"--controllers="+strings.Join(controllers, ","),
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--root-ca-file="+ca,
		"--service-account-private-key-file="+filepath.Join(c.Dir, "certs", "sa.key"),
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[0]),
		"--concurrent-daemonset-syncs=1",
		"--v=2")
	if err != nil {
		return nil, err
	}
	m := &ControllerManager{p: p}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", ports[0])
	// Self-signed serving certificate: only "does it answer ok".
	hc := &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	err = waitProc(ctx, p, time.Minute, func() error {
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	})
	if err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

// Log is the controller-manager's log file.
func (m *ControllerManager) Log() string { return m.p.Log }

// Stop stops kube-controller-manager (SIGTERM, then SIGKILL).
func (m *ControllerManager) Stop() error {
	if m == nil {
		return nil
	}
	return m.p.Stop(10 * time.Second)
}

// BindPods acts as the scheduler (there is none): it binds every Pod of
// namespace ns matching selector and not yet bound to node, returning how
// many it bound.
func (n *Node) BindPods(ctx context.Context, ns, selector string) (int, error) {
	l, err := n.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, err
	}
	bound := 0
	for _, p := range l.Items {
		if p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
			continue
		}
		b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
			Target: corev1.ObjectReference{Kind: "Node", Name: n.Name}}
		if err := n.client.CoreV1().Pods(ns).Bind(ctx, b, metav1.CreateOptions{}); err != nil {
			return bound, fmt.Errorf("bind %s/%s: %w", p.Namespace, p.Name, err)
		}
		bound++
	}
	return bound, nil
}

// ImportImage imports a docker-archive tarball into the node's containerd
// (namespace k8s.io, where kubelet looks).
func (n *Node) ImportImage(ctx context.Context, tarball string) error {
	if out, err := n.ctr(ctx, "-n", "k8s.io", "images", "import", tarball); err != nil {
		return fmt.Errorf("import %s: %w: %s", tarball, err, out)
	}
	return nil
}

// BuildBinaryImage packs the static binary bin as image ref (entrypoint
// /<base name of bin>, nothing else in the image: like deploy/Dockerfile's
// distroless image) into a docker-archive tarball in dir, with umoci and
// skopeo as images.sh does. It returns the tarball's path.
func BuildBinaryImage(ctx context.Context, bin, ref, dir string) (string, error) {
	work, err := os.MkdirTemp(dir, "image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	out := filepath.Join(dir, filepath.Base(bin)+"-image.tar")
	name := filepath.Base(bin)
	script := `set -euo pipefail
cd "$1"
umoci init --layout oci
umoci new --image oci:img
umoci unpack --image oci:img bundle >/dev/null
r=bundle/rootfs
mkdir -p "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/etc"
chmod 1777 "$r/tmp"
cp "$2" "$r/$3"
printf 'root:x:0:0:root:/:/sbin/nologin\n' >"$r/etc/passwd"
umoci repack --image oci:img bundle >/dev/null
umoci config --image oci:img --config.entrypoint "/$3" --config.env PATH=/
umoci gc --layout oci
rm -f "$4"
skopeo copy --quiet oci:oci:img "docker-archive:$4:$5"
`
	cmd := exec.CommandContext(ctx, "bash", "-c", script, "build-image", work, bin, name, out, ref)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building image %s: %w\n%s", ref, err, buf.String())
	}
	return out, nil
}

// waitProc polls check every 100 ms until it succeeds, p exits or timeout.
func waitProc(ctx context.Context, p *proc, timeout time.Duration, check func() error) error {
	return (&Node{}).waitFor(ctx, p, timeout, check)
}
