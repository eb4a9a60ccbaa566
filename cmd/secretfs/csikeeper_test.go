//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// csiKeeper is `secretfs csi --keeper` over a file source and a provider
// folder, in a temp root with short paths (sockets stay under 108
// bytes), started again after each kill. Call it inside a private mount
// namespace: a kill leaves held mounts, and a failed run's cleanup
// detaches them.
type csiKeeper struct {
	t                              *testing.T
	root, socks, src, ksock, csock string
	keeper, cur                    *exec.Cmd
	logs                           []*strings.Builder
	targets                        []string
}

func newCSIKeeper(t *testing.T) *csiKeeper {
	t.Helper()
	root, err := os.MkdirTemp("", "pk")
	must(t, err)
	w := &csiKeeper{t: t, root: root, socks: filepath.Join(root, "providers"), src: filepath.Join(root, "src"),
		ksock: filepath.Join(root, "keeper.sock"), csock: filepath.Join(root, "csi.sock")}
	for _, d := range []string{w.socks, w.src} {
		must(t, os.Mkdir(d, 0o700))
	}
	w.keeper = exec.Command(bin, "keeper", "--socket", w.ksock)
	must(t, w.keeper.Start())
	waitFor(t, "keeper socket", func() bool { _, err := os.Stat(w.ksock); return err == nil })
	t.Cleanup(w.cleanup)
	return w
}

// start runs a plugin process and waits for its socket.
func (w *csiKeeper) start() {
	w.t.Helper()
	os.Remove(w.csock)
	cmd := exec.Command(bin, "csi", "--endpoint", "unix://"+w.csock, "--node-id", "n", "--source", "file:"+w.src,
		"--provider-dir", w.socks, "--keeper", w.ksock, "--mount-root", w.root)
	w.logs = append(w.logs, &strings.Builder{})
	cmd.Stderr = w.logs[len(w.logs)-1]
	must(w.t, cmd.Start())
	w.cur = cmd
	waitFor(w.t, "csi socket", func() bool { _, err := os.Stat(w.csock); return err == nil })
}

// kill ends the plugin process with SIGKILL.
func (w *csiKeeper) kill() {
	w.cur.Process.Signal(syscall.SIGKILL)
	w.cur.Wait()
	w.cur = nil
}

func (w *csiKeeper) cleanup() {
	if w.cur != nil {
		w.kill()
	}
	for _, target := range w.targets {
		unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW) // a failed test's own mount, in its temp root
	}
	w.keeper.Process.Kill()
	w.keeper.Wait()
	if w.t.Failed() {
		for i, l := range w.logs {
			w.t.Logf("plugin %d stderr:\n%s", i, l.String())
		}
	}
	os.RemoveAll(w.root)
}

// inline is kubelet's publish of inline volume vol of Pod uid in
// namespace default, with attrs; its target's parent is made.
func (w *csiKeeper) inline(uid, vol string, attrs map[string]string) *csi.NodePublishVolumeRequest {
	w.t.Helper()
	target := filepath.Join(w.root, "pods", uid, "volumes", "kubernetes.io~csi", vol, "mount")
	must(w.t, os.MkdirAll(filepath.Dir(target), 0o750))
	w.targets = append(w.targets, target)
	sum := sha256.Sum256([]byte(uid + vol))
	vc := map[string]string{"csi.storage.k8s.io/pod.name": "app", "csi.storage.k8s.io/pod.namespace": "default",
		"csi.storage.k8s.io/pod.uid": uid, "csi.storage.k8s.io/serviceAccount.name": "default", "csi.storage.k8s.io/ephemeral": "true"}
	maps.Copy(vc, attrs)
	return &csi.NodePublishVolumeRequest{
		VolumeId: "csi-" + hex.EncodeToString(sum[:]), TargetPath: target, Readonly: true,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		VolumeContext: vc,
	}
}

// node calls f on the plugin's Node service, as kubelet does: waiting
// until the plugin listens (it takes mounts back before it serves).
func (w *csiKeeper) node(f func(context.Context, csi.NodeClient) error) {
	w.t.Helper()
	conn, err := grpc.NewClient("unix://"+w.csock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	must(w.t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f(ctx, csi.NewNodeClient(conn)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *csiKeeper) publish(req *csi.NodePublishVolumeRequest) {
	w.t.Helper()
	w.node(func(ctx context.Context, n csi.NodeClient) error { _, err := n.NodePublishVolume(ctx, req); return err })
}

// unpublish goes through the plugin, as kubelet's: it unmounts and
// removes the target (the cleanup's detach is only for a failure).
func (w *csiKeeper) unpublish(req *csi.NodePublishVolumeRequest) {
	w.t.Helper()
	w.node(func(ctx context.Context, n csi.NodeClient) error {
		_, err := n.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: req.TargetPath})
		return err
	})
	if _, err := os.Stat(req.TargetPath); !os.IsNotExist(err) {
		w.t.Errorf("target after unpublish: %v", err)
	}
}
