package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/backend/file"
	"github.com/secretfs/secretfs/backend/kube"
	"github.com/secretfs/secretfs/sanity/cluster"
)

// BenchmarkBackendWatch: how long a source's Watch takes to report a
// change, without cache or FUSE (BenchmarkUpdateLatency and
// BenchmarkKubeUpdateLatency measure the whole path to a reader). Each op
// changes the Secret and waits for the callback carrying the new value;
// the time runs from the start of the change (writing the manifest's
// temporary before renaming it over for file/, the Update call for kube/,
// whose event often arrives before the call returns) to the callback.
// At least 200 changes; p50-ms, p99-ms, max-ms. Needs no root; kube/
// starts a real kube-apiserver and etcd (sanity/cluster). The tests of
// the backends assert one event per change; the figures are here.
func BenchmarkBackendWatch(b *testing.B) {
	b.Run("file", func(b *testing.B) {
		dir := b.TempDir()
		edit(b, dir, 0)
		be, err := file.New(dir)
		if err != nil {
			b.Fatal(err)
		}
		benchWatch(b, be, backend.Ref{Namespace: "default", Name: "bench"}, func(gen int) {
			edit(b, dir, gen)
		})
	})
	b.Run("kube", func(b *testing.B) {
		c := cluster.Start(b)
		be, err := kube.New(c.RestConfig(), kube.Options{Log: quiet})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		secrets := c.Client().CoreV1().Secrets("default")
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bench"},
			StringData: map[string]string{"value": fmt.Sprintf("v%08d", 0)}}
		if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		benchWatch(b, be, backend.Ref{Namespace: "default", Name: "bench"}, func(gen int) {
			s.StringData["value"] = fmt.Sprintf("v%08d", gen)
			if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// benchWatch watches ref on be (whose key "value" holds v00000000 at the
// start), calls change(gen) for gen 1… and times each callback with the
// value it set.
func benchWatch(b *testing.B, be backend.Backend, ref backend.Ref, change func(gen int)) {
	type seen struct {
		value string
		at    time.Time
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan seen, 16)
	done := make(chan error, 1)
	go func() {
		done <- be.Watch(ctx, ref, func(ev backend.Event) {
			var v string
			if ev.Secret != nil {
				v = string(ev.Secret.Data["value"])
			}
			events <- seen{v, time.Now()}
		})
	}()
	b.Cleanup(func() { cancel(); <-done })
	wait := func(want string) time.Time {
		for {
			select {
			case ev := <-events:
				if ev.value == want {
					return ev.at
				}
			case err := <-done:
				b.Fatalf("watch ended: %v", err)
			case <-time.After(10 * time.Second):
				b.Fatalf("value %q not reported within 10s", want)
			}
		}
	}
	wait(fmt.Sprintf("v%08d", 0))

	n := max(b.N, minSamples)
	lat := make(latencies, 0, n)
	b.ResetTimer()
	for gen := 1; gen <= n; gen++ {
		t0 := time.Now()
		change(gen)
		lat = append(lat, wait(fmt.Sprintf("v%08d", gen)).Sub(t0))
	}
	b.ReportMetric(float64(n), "changes")
	lat.report(b, "")
}
