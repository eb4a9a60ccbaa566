//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestCSIHardened: `secretfs csi` with a volume published writes no core,
// is non-dumpable and holds the volume's bytes in locked memory; its
// mount keeps allow_other (Pods run as other users).
func TestCSIHardened(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	work := t.TempDir()
	src, root := filepath.Join(work, "src"), filepath.Join(work, "kubelet")
	must(t, os.Mkdir(src, 0o700))
	writeManifest(t, filepath.Join(src, "s.yaml"), secretYAML("s", "k", "v"))
	sock := filepath.Join(work, "csi.sock")
	cmd := exec.Command(bin, "csi", "--endpoint", "unix://"+sock, "--node-id", "n1", "--source", "file:"+src, "--mount-root", root)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	must(t, cmd.Start())
	target := filepath.Join(root, "pods", "p1", "volumes", "v", "mount")
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		// Left mounted for a keeper that is not there; ours to clear,
		// in this namespace, before the temp folder goes.
		syscall.Unmount(target, syscall.MNT_DETACH)
	})
	waitFor(t, "csi socket", func() bool { _, err := os.Stat(sock); return err == nil })
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer conn.Close()
	must(t, os.MkdirAll(filepath.Dir(target), 0o750))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = csi.NewNodeClient(conn).NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId:   "v1",
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		Readonly: true,
		VolumeContext: map[string]string{"secretName": "s",
			"csi.storage.k8s.io/pod.namespace": "default", "csi.storage.k8s.io/ephemeral": "true"},
	}, grpc.WaitForReady(true)) // the socket file exists a moment before it listens
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, logs.String())
	}
	if got := readFile(t, filepath.Join(target, "k")); got != "v" {
		t.Errorf("k = %q", got)
	}
	if mi := mountOf(t, target); mi == nil || !hasOption(mi.VFSOptions, "allow_other") {
		t.Errorf("CSI mount lacks allow_other: %v", mi)
	}
	checkHardened(t, cmd.Process.Pid, 0)
}
