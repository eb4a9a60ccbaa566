package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfs/secretfs/sanity/cluster"
)

// execChanges is how many changes each BenchmarkExecLatency run times.
const execChanges = 100

// BenchmarkExecLatency: `secretfs exec --on-change restart|signal:HUP
// --debounce 0` (the real binary) runs bench/internal/execapp, which
// prints CLOCK_MONOTONIC at its start and at each SIGHUP. Each op changes
// the Secret's one key `value`; the time runs from just before the change
// (the manifest's rename, the API update call) to the app's start with
// the new value (restart-*) or to its SIGHUP handler (signal-*). p50/p99
// over at least 100 changes, one at a time. The default --debounce (100
// ms) adds its 100 ms to each figure; --splay adds its random wait.
//
//	file:          --source file:DIR, the manifest rewritten as editors do
//	kube:          --source kube against a real kube-apiserver (sanity/cluster)
//	dir-secretfs:  --dir on a secretfs volume (mounted.Mount of the file
//	               source), the manifest rewritten: through the volume's
//	               switch and the watch of its ..data link
func BenchmarkExecLatency(b *testing.B) {
	needRoot(b)
	work := b.TempDir()
	bin, app := filepath.Join(work, "secretfs"), filepath.Join(work, "execapp")
	for out, pkg := range map[string]string{bin: "cmd/secretfs", app: "bench/internal/execapp"} {
		if o, err := exec.Command("go", "build", "-o", out, "github.com/secretfs/secretfs/"+pkg).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", pkg, err, o)
		}
	}
	b.Run("file", func(b *testing.B) {
		src := b.TempDir()
		edit(b, src, 0)
		s := &execSource{bin: bin, app: app, args: []string{"--source", "file:" + src, "--secret", "bench"},
			change: func(gen int) { edit(b, src, gen) }}
		s.run(b)
	})
	b.Run("kube", func(b *testing.B) {
		c := cluster.Start(b)
		ctx := context.Background()
		secrets := c.Client().CoreV1().Secrets("default")
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Data: map[string][]byte{"value": []byte("v00000000")}}
		if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		s := &execSource{bin: bin, app: app, args: []string{"--source", "kube", "--secret", "bench"},
			env: []string{"KUBECONFIG=" + c.Kubeconfig},
			change: func(gen int) {
				sec.Data["value"] = fmt.Appendf(nil, "v%08d", gen)
				if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
					b.Fatal(err)
				}
			}}
		s.run(b)
	})
	b.Run("dir-secretfs", func(b *testing.B) {
		src, mnt := mountManifest(b)
		s := &execSource{bin: bin, app: app, args: []string{"--dir", mnt}, change: func(gen int) { edit(b, src, gen) }}
		s.run(b)
	})
}

// execSource is one way to feed secretfs exec; gen is the Secret's
// current version, carried from the restart run to the signal run.
type execSource struct {
	bin, app  string
	args, env []string
	change    func(gen int)
	gen       int
}

func (s *execSource) run(b *testing.B) {
	b.Run("restart", func(b *testing.B) { s.time(b, "restart", "restart-") })
	b.Run("signal", func(b *testing.B) { s.time(b, "signal:HUP", "signal-") })
}

// time runs secretfs exec with onChange and times execChanges changes.
func (s *execSource) time(b *testing.B, onChange, prefix string) {
	args := append(append([]string{"exec"}, s.args...), "--on-change", onChange, "--debounce", "0", "--", s.app)
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), s.env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) // our own child, by its pid: it ends the app
		cmd.Wait()
	})
	next := func(prefix string) int64 {
		select {
		case l, ok := <-lines:
			if !ok {
				b.Fatalf("secretfs exec ended: %s", stderr.String())
			}
			rest, ok := strings.CutPrefix(l, prefix)
			ns, err := strconv.ParseInt(rest[strings.LastIndex(rest, " ")+1:], 10, 64)
			if !ok || err != nil {
				b.Fatalf("the app said %q, want %q…", l, prefix)
			}
			return ns
		case <-time.After(30 * time.Second):
			b.Fatalf("the app did not say %q…; stderr: %s", prefix, stderr.String())
		}
		return 0
	}
	next(fmt.Sprintf("start v%08d ", s.gen))
	n := max(b.N, execChanges)
	lat := make(latencies, 0, n)
	b.ResetTimer()
	for range n {
		s.gen++
		t0 := monotonic()
		s.change(s.gen)
		want := "hup "
		if onChange == "restart" {
			want = fmt.Sprintf("start v%08d ", s.gen)
		}
		lat = append(lat, time.Duration(next(want)-t0))
	}
	b.ReportMetric(float64(n), "changes")
	lat.report(b, prefix)
}
