//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/secretfs/secretfs/backend/provider/providertest"
	"github.com/secretfs/secretfs/sanity/mountns"
)

// A provider volume survives a SIGKILL of `secretfs csi --keeper`: readers
// go on without an error, the next process takes the mount back, joins
// the provider again and follows the next rotation at a republish.
func TestProviderVolumeSurvivesKill(t *testing.T) {
	// A private mount namespace: the kill leaves a held mount, and the
	// cleanup of a failed run detaches it.
	if !mountns.Enter(t) {
		return
	}
	root, err := os.MkdirTemp("", "pk") // short: socket paths stay under 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	socks, src := filepath.Join(root, "providers"), filepath.Join(root, "src")
	for _, d := range []string{socks, src} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	srv := providertest.Start(t, socks, "vault")
	srv.SetFiles(map[string]string{"db-password": "v1"}, "1")
	writeManifest(t, filepath.Join(src, "spc.yaml"), "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: db, namespace: default}\nspec: {provider: vault, parameters: {roleName: app}}\n")

	ksock := filepath.Join(root, "keeper.sock")
	k := exec.Command(bin, "keeper", "--socket", ksock)
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "keeper socket", func() bool { _, err := os.Stat(ksock); return err == nil })
	csock := filepath.Join(root, "csi.sock")
	var logs []*strings.Builder
	start := func() *exec.Cmd {
		os.Remove(csock)
		cmd := exec.Command(bin, "csi", "--endpoint", "unix://"+csock, "--node-id", "n", "--source", "file:"+src,
			"--provider-dir", socks, "--keeper", ksock, "--mount-root", root)
		logs = append(logs, &strings.Builder{})
		cmd.Stderr = logs[len(logs)-1]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "csi socket", func() bool { _, err := os.Stat(csock); return err == nil })
		return cmd
	}
	cur := start()
	target := filepath.Join(root, "pods", "uid-1", "volumes", "kubernetes.io~csi", "creds", "mount")
	t.Cleanup(func() {
		if cur != nil {
			cur.Process.Signal(syscall.SIGKILL)
			cur.Wait()
		}
		unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW) // a failed test's own mount, in its temp root
		k.Process.Kill()
		k.Wait()
		if t.Failed() {
			for i, l := range logs {
				t.Logf("plugin %d stderr:\n%s", i, l.String())
			}
		}
		os.RemoveAll(root)
	})
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("uid-1creds"))
	req := &csi.NodePublishVolumeRequest{
		VolumeId: "csi-" + hex.EncodeToString(sum[:]), TargetPath: target, Readonly: true,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		VolumeContext: map[string]string{
			"secretProviderClass": "db", "csi.storage.k8s.io/pod.name": "app", "csi.storage.k8s.io/pod.namespace": "default",
			"csi.storage.k8s.io/pod.uid": "uid-1", "csi.storage.k8s.io/serviceAccount.name": "default", "csi.storage.k8s.io/ephemeral": "true",
		},
	}
	publish := func() {
		t.Helper()
		conn, err := grpc.NewClient("unix://"+csock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// As kubelet, call until the plugin listens (it takes mounts back
		// before it serves).
		_, err = csi.NewNodeClient(conn).NodePublishVolume(ctx, req, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	publish()
	file := filepath.Join(target, "db-password")

	var stop atomic.Bool
	var reads, errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			if _, err := os.ReadFile(file); err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			reads.Add(1)
		}
	})
	cur.Process.Signal(syscall.SIGKILL)
	cur.Wait()
	calls := srv.Calls()
	cur = start()
	waitFor(t, "the takeover's call to the provider", func() bool { return srv.Calls() > calls })
	srv.SetFiles(map[string]string{"db-password": "v2"}, "2")
	publish() // kubelet's republish reaches the new process
	if b, err := os.ReadFile(file); err != nil || string(b) != "v2" {
		t.Errorf("after the takeover and a republish: %q %v, want v2", b, err)
	}
	stop.Store(true)
	wg.Wait()
	// Unpublish through the plugin, as kubelet does: it unmounts and
	// removes the target; the cleanup's detach is only for a failure.
	conn, err := grpc.NewClient("unix://"+csock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := csi.NewNodeClient(conn).NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: target}); err != nil {
		t.Errorf("unpublish: %v", err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target after unpublish: %v", err)
	}
	if errs.Load() > 0 {
		t.Errorf("%d of %d reads failed across the kill (first: %v)", errs.Load(), reads.Load(), firstErr.Load())
	}
	t.Logf("%d reads across the kill, none failed", reads.Load())
}
