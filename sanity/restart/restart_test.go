// Package restart proves that volumes survive their plugin: `secretfs
// csi --keeper` serves kubelet-shaped volumes while readers loop over every
// file and the Secrets keep changing; the plugin is SIGKILLed at random
// moments (and upgraded once, with SIGTERM and a new binary), and the next
// process takes every mount back. No read may fail or mix two versions.
//
//	go test ./sanity/restart/            50 volumes, 20 kills, 1 upgrade
//	go test -short ./sanity/restart/     10 volumes, 3 kills (CI's quick run)
package restart

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
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
	"google.golang.org/grpc/credentials/insecure"

	"github.com/secretfs/secretfs/sanity/needroot"
)

type world struct {
	t       *testing.T
	dir     string
	src     string
	sock    string
	keeper  string
	bin     string
	plugin  *exec.Cmd
	logs    []string
	targets []string
	reqs    []*csi.NodePublishVolumeRequest
}

func build(t *testing.T, dir, name string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/secretfs/secretfs/cmd/secretfs").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func (w *world) secret(i, gen int) {
	body := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s%d\n  namespace: app\nstringData:\n  a: g%d\n  b: g%d\n", i, gen, gen)
	tmp := filepath.Join(w.src, fmt.Sprintf(".s%d.tmp", i))
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(w.src, fmt.Sprintf("s%d.yaml", i))); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) start(bin string) {
	w.t.Helper()
	log, err := os.Create(filepath.Join(w.dir, fmt.Sprintf("plugin-%d.log", len(w.logs))))
	if err != nil {
		w.t.Fatal(err)
	}
	w.logs = append(w.logs, log.Name())
	w.plugin = exec.Command(bin, "csi", "--endpoint", "unix://"+w.sock, "--node-id", "n1",
		"--source", "file:"+w.src, "--keeper", w.keeper, "--mount-root", w.dir)
	w.plugin.Stderr = log
	if err := w.plugin.Start(); err != nil {
		w.t.Fatal(err)
	}
}

// call runs one node call on a fresh connection, retrying while the
// plugin (re)starts.
func (w *world) call(f func(csi.NodeClient) error) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := grpc.NewClient("unix://"+w.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = f(csi.NewNodeClient(conn))
			_ = ctx
			cancel()
			conn.Close()
		}
		if err == nil || time.Now().After(deadline) || !strings.Contains(err.Error(), "Unavailable") {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *world) request(i int) *csi.NodePublishVolumeRequest {
	uid := fmt.Sprintf("pod-%d", i)
	sum := sha256.Sum256([]byte(uid + "secret"))
	parent := filepath.Join(w.dir, "pods", uid, "volumes", "kubernetes.io~csi", "secret")
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

// static reports whether volume i is fed by the request's `secrets`
// (nodePublishSecretRef) instead of a named Secret: every fifth one.
func static(i int) bool { return i%5 == 4 }

func setStatic(req *csi.NodePublishVolumeRequest, gen int) {
	delete(req.VolumeContext, "secretName")
	v := fmt.Sprintf("g%d", gen)
	req.Secrets = map[string]string{"a": v, "b": v}
}

func (w *world) publish(req *csi.NodePublishVolumeRequest) error {
	return w.call(func(c csi.NodeClient) error {
		_, err := c.NodePublishVolume(context.Background(), req)
		return err
	})
}

// readVolume reads a and b through one resolution of ..data; they must
// come from one version.
func readVolume(target string) (string, error) {
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

func TestPluginRestarts(t *testing.T) {
	needroot.FUSE(t, "restarts keep FUSE mounts")
	volumes, kills := 50, 20
	if testing.Short() {
		volumes, kills = 10, 3
	}
	dir, err := os.MkdirTemp("", "secretfs-restart-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	w := &world{t: t, dir: dir, src: filepath.Join(dir, "src"), sock: filepath.Join(dir, "csi.sock"), keeper: filepath.Join(dir, "keeper.sock")}
	os.Mkdir(w.src, 0o700)
	w.bin = build(t, dir, "secretfs")
	upgraded := build(t, dir, "secretfs-v2")

	k := exec.Command(w.bin, "keeper", "--socket", w.keeper)
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(w.keeper); err == nil || time.Now().After(deadline) {
			break
		}
	}
	t.Cleanup(func() {
		if w.plugin != nil && w.plugin.ProcessState == nil {
			w.plugin.Process.Signal(syscall.SIGTERM)
			w.plugin.Wait()
		}
		for _, tg := range w.targets {
			syscall.Unmount(tg, syscall.MNT_DETACH)
		}
		k.Process.Kill()
		k.Wait()
		if t.Failed() {
			for i, l := range w.logs {
				b, _ := os.ReadFile(l)
				t.Logf("plugin %d log (last 3000 bytes):\n%s", i, tail(string(b), 3000))
			}
		} else {
			os.RemoveAll(dir)
		}
	})
	gens := make([]atomic.Int64, volumes)
	for i := range volumes {
		w.secret(i, 0)
	}
	w.start(w.bin)
	for i := range volumes {
		req := w.request(i)
		if static(i) {
			setStatic(req, 0)
		}
		if err := w.publish(req); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		w.reqs, w.targets = append(w.reqs, req), append(w.targets, req.TargetPath)
	}

	var stop atomic.Bool
	var reads, failures atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var slowest atomic.Int64 // longest single read, ns, in the current window
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; !stop.Load(); i = (i + 1) % volumes {
				t0 := time.Now()
				v, err := readVolume(w.targets[i])
				if d := time.Since(t0).Nanoseconds(); d > slowest.Load() {
					slowest.Store(d)
				}
				if err == nil && !strings.HasPrefix(v, "g") {
					err = fmt.Errorf("unexpected content %q", v)
				}
				if err != nil {
					failures.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("volume %d: %w", i, err)
					}
					mu.Unlock()
				}
				reads.Add(1)
			}
		}()
	}
	update := func() {
		i := rand.IntN(volumes)
		w.secret(i, int(gens[i].Add(1)))
	}

	var stalls []time.Duration
	for kill := range kills + 1 {
		for range 2 + rand.IntN(6) {
			update()
			time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
		}
		slowest.Store(0)
		bin := w.bin
		if kill == kills/2 {
			// The planned upgrade: SIGTERM, then a new binary.
			w.plugin.Process.Signal(syscall.SIGTERM)
			bin = upgraded
		} else {
			w.plugin.Process.Signal(syscall.SIGKILL)
		}
		exited := make(chan error, 1)
		go func(c *exec.Cmd) { exited <- c.Wait() }(w.plugin)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("kill %d: the old plugin did not exit within 10s", kill)
		}
		update() // a change while nobody serves
		time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
		w.start(bin)
		// kubelet keeps republishing (requiresRepublish): the new process
		// must know every volume it took over.
		for _, req := range w.reqs {
			if err := w.publish(req); err != nil {
				t.Fatalf("republish after restart %d: %v", kill, err)
			}
		}
		time.Sleep(50 * time.Millisecond)
		stalls = append(stalls, time.Duration(slowest.Load()))
	}
	// Every volume catches up with its Secret after the takeovers.
	for i := range volumes {
		gen := gens[i].Add(1)
		w.secret(i, int(gen))
		if static(i) { // its data comes with the (re)publish
			setStatic(w.reqs[i], int(gen))
			if err := w.publish(w.reqs[i]); err != nil {
				t.Fatalf("republish of static volume %d: %v", i, err)
			}
		}
		want := fmt.Sprintf("g%d", gen)
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, _ := readVolume(w.targets[i])
			if v == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("volume %d shows %q, want %q after the last takeover", i, v, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 {
		t.Errorf("%d of %d reads failed or mixed versions; first: %v", failures.Load(), reads.Load(), firstErr)
	}
	for _, req := range w.reqs {
		if err := w.call(func(c csi.NodeClient) error {
			_, err := c.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: req.TargetPath})
			return err
		}); err != nil {
			t.Errorf("unpublish: %v", err)
		}
	}
	if n := countMounts(dir); n != 0 {
		t.Errorf("%d mounts left after unpublishing everything", n)
	}
	slices.Sort(stalls)
	t.Logf("%d volumes, %d kills + 1 upgrade, %d reads, %d failures; longest read per takeover: p50 %v, p99 %v, max %v",
		volumes, kills, reads.Load(), failures.Load(), pct(stalls, 0.5), pct(stalls, 0.99), stalls[len(stalls)-1])
}

func pct(s []time.Duration, q float64) time.Duration {
	i := int(float64(len(s))*q+0.5) - 1
	return s[max(0, min(i, len(s)-1))].Round(time.Millisecond)
}

func countMounts(under string) int {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Count(string(b), " "+under+"/")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
