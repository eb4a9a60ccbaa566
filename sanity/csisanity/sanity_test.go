package csisanity

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/secretfs/secretfs/sanity/needroot"
	"github.com/secretfs/secretfs/sanity/syncbuf"
)

// variantEnv picks the volume source when the test binary runs itself:
// ginkgo runs one suite per process.
const variantEnv = "SECRETFS_SANITY_VARIANT"

const secretManifest = `apiVersion: v1
kind: Secret
metadata:
  name: sanity-secret
  namespace: default
data:
  username: YWRtaW4=
  password: MWYyZDFlMmU2N2Rm
`

// secretsFile feeds NodePublishVolume's `secrets` (nodePublishSecretRef)
// for the variant whose volumes carry no secretName.
const secretsFile = `NodePublishVolumeSecret:
  username: admin
  password: 1f2d1e2e67df
`

// report collects the outcome of every spec for the checks after the run.
var (
	reportMu sync.Mutex
	specs    []types.SpecReport
)

var _ = ReportAfterSuite("collect", func(r Report) {
	reportMu.Lock()
	defer reportMu.Unlock()
	specs = r.SpecReports
})

// TestSanity runs the suite with volumes naming a Secret of the file
// source (secretName), or with the variant chosen by variantEnv.
func TestSanity(t *testing.T) {
	variant := os.Getenv(variantEnv)
	if variant == "" {
		variant = "secretName"
	}
	runSanity(t, variant)
}

// TestSanityNodePublishSecretRef runs the suite again, in a child process,
// with volumes whose data is the request's `secrets`.
func TestSanityNodePublishSecretRef(t *testing.T) {
	if os.Getenv(variantEnv) != "" {
		t.Skip("child process: TestSanity runs the variant")
	}
	requireFUSE(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSanity$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), variantEnv+"=secrets")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nodePublishSecretRef variant failed: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "sanity:") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

func runSanity(t *testing.T, variant string) {
	requireFUSE(t)
	tmp := t.TempDir()
	bin := buildBinary(t, tmp)
	src := filepath.Join(tmp, "secrets")
	must(t, os.Mkdir(src, 0o700))
	must(t, os.WriteFile(filepath.Join(src, "sanity-secret.yaml"), []byte(secretManifest), 0o600))

	sock := filepath.Join(tmp, "csi.sock")
	var logs syncbuf.Buffer
	cmd := exec.Command(bin, "csi", "--endpoint", "unix://"+sock, "--node-id", "sanity-node",
		"--source", "file:"+src, "--mount-root", tmp, "--log-level", "debug")
	cmd.Stderr = &logs
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	waitForSocket(t, sock, exited)

	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + sock
	// The parent must exist and the mount dir must not: csi-sanity
	// creates it, and publish must create the target inside it.
	cfg.TargetPath = filepath.Join(tmp, "mnt")
	cfg.StagingPath = filepath.Join(tmp, "staging")
	cfg.TestVolumeParameters = map[string]string{"secretNamespace": "default", "defaultMode": "0400"}
	switch variant {
	case "secretName":
		cfg.TestVolumeParameters["secretName"] = "sanity-secret"
		cfg.TestVolumeParameters["items"] = `[{"key": "username", "path": "user/name"}, {"key": "password", "path": "password", "mode": "0440"}]`
	case "secrets":
		f := filepath.Join(tmp, "secrets.yaml")
		must(t, os.WriteFile(f, []byte(secretsFile), 0o600))
		cfg.SecretsFile = f
	default:
		t.Fatalf("unknown variant %q", variant)
	}
	sanity.Test(t, cfg)

	// Stop as kubelet's pod termination does: SIGTERM, exit 0.
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("plugin exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("plugin did not stop on SIGTERM")
	}
	checkReport(t)
	published := strings.Count(logs.String(), `"msg":"volume published"`)
	if published == 0 {
		t.Errorf("no volume was really published; plugin log:\n%s", logs.String())
	}
	if m := ourMounts(t, tmp); len(m) > 0 {
		t.Errorf("mounts left behind: %v", m)
	}
	if bytes.Contains([]byte(logs.String()), []byte("1f2d1e2e67df")) {
		t.Error("the secret value appears in the plugin's log")
	}
	t.Logf("sanity: variant %s: %d real publishes (mounts)", variant, published)
}

// checkReport fails on any failed spec and on any skip that our
// configuration caused; skips for capabilities we do not offer are fine.
func checkReport(t *testing.T) {
	reportMu.Lock()
	defer reportMu.Unlock()
	var passed, skipped int
	for _, s := range specs {
		switch {
		case s.State == types.SpecStatePassed:
			passed++
		case s.State == types.SpecStateSkipped:
			skipped++
			msg := s.Failure.Message
			if !strings.Contains(msg, "not supported") && !strings.Contains(msg, "does not have") &&
				!strings.Contains(msg, "capacity of the volume is unknown") {
				t.Errorf("spec skipped by our configuration: %s: %s", s.FullText(), msg)
			}
		case s.State == types.SpecStatePending:
		default:
			t.Errorf("spec %s: %s", s.State, s.FullText())
		}
	}
	t.Logf("sanity: %d specs passed, %d skipped (capabilities not offered), %d in all", passed, skipped, len(specs))
	if passed < 31 {
		t.Errorf("only %d specs passed; the minimal Controller should make at least 31 apply", passed)
	}
}

func requireFUSE(t *testing.T) {
	t.Helper()
	needroot.FUSE(t, "csi-sanity publishes mount FUSE")
}

func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "secretfs")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/secretfs/secretfs/cmd/secretfs").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func waitForSocket(t *testing.T, sock string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("plugin exited early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("plugin socket did not appear")
}

// ourMounts lists secretfs mounts under dir.
func ourMounts(t *testing.T, dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir) && strings.Contains(sc.Text(), "secretfs") {
			out = append(out, fields[4])
		}
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
