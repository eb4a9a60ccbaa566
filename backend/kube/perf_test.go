//go:build linux

// The control plane of these tests (sanity/cluster) runs Linux builds of
// kube-apiserver and etcd.

package kube

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// TestWatchOneEventPerUpdate: 250 updates through the real apiserver (and
// etcd), one at a time, give exactly one event each, carrying the new
// value, and nothing after the last; and the whole run costs the
// apiserver one list and one watch of the Secret (no relist, no get, no
// second watch: WatchTimeout is minutes). A backend that polled, relisted
// on events or reported an update twice fails here. How long an update
// takes to show is measured by make bench (BenchmarkBackendWatch/kube and
// BenchmarkKubeUpdateLatency).
func TestWatchOneEventPerUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	e := start(t)
	const ua = "secretfs-one-event"
	cfg := e.c.RestConfig()
	cfg.UserAgent = ua
	b, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	e.put(t, "default", "s", "k", val(0))
	ch, _ := e.watch(t, ref("default", "s"))
	wantData(t, next(t, ch, 10*time.Second), "k", val(0))

	const n = 250
	for i := 1; i <= n; i++ {
		e.put(t, "default", "s", "k", val(i))
		wantData(t, next(t, ch, 5*time.Second), "k", val(i))
	}
	quiet(t, ch, time.Second)

	evs, err := e.c.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	verbs := map[string]int{}
	for _, ev := range evs {
		if strings.HasPrefix(ev.UserAgent, ua) {
			verbs[ev.Verb]++
		}
	}
	if len(verbs) != 2 || verbs["list"] != 1 || verbs["watch"] != 1 {
		t.Errorf("%d updates cost the apiserver %v, want one list and one watch", n, verbs)
	}
}

// TestRequestCount compares, from the audit log, what 100 Secrets in use
// cost the apiserver: 100 per-Secret watches (ours) against one
// namespace-wide informer. The namespace also holds 100 Secrets nobody
// uses, as real namespaces do.
func TestRequestCount(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	e := start(t)
	const n = 100
	for _, ns := range []string{"per-secret", "per-namespace"} {
		e.namespace(t, ns)
		for i := range 2 * n {
			e.put(t, ns, fmt.Sprintf("s%03d", i), "k", val(0))
		}
	}

	// Ours: 100 Watches of 100 different Secrets.
	cfg := e.c.RestConfig()
	cfg.UserAgent = "secretfs-per-secret"
	b, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	t0 := time.Now()
	chans := make([]<-chan stamped, n)
	for i := range n {
		chans[i], _ = e.watch(t, ref("per-secret", fmt.Sprintf("s%03d", i)))
	}
	for i := range n {
		wantData(t, next(t, chans[i], 30*time.Second), "k", val(0))
	}
	t.Logf("per-Secret: %d watches primed in %v", n, time.Since(t0).Round(time.Millisecond))
	for i := range n {
		e.put(t, "per-secret", fmt.Sprintf("s%03d", i), "k", val(1))
		wantData(t, next(t, chans[i], 5*time.Second), "k", val(1))
	}

	// Theirs: one informer over the namespace, which receives every
	// Secret of it, used or not.
	cfg = e.c.RestConfig()
	cfg.UserAgent = "secretfs-per-namespace"
	cs := kubernetes.NewForConfigOrDie(cfg)
	lw := cache.NewListWatchFromClient(cs.CoreV1().RESTClient(), "secrets", "per-namespace", fields.Everything())
	inf := cache.NewSharedIndexInformer(lw, &corev1.Secret{}, 0, cache.Indexers{})
	var delivered atomic.Int64
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { delivered.Add(1) },
		UpdateFunc: func(any, any) { delivered.Add(1) },
	})
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	t0 = time.Now()
	go inf.Run(stop)
	if !cache.WaitForCacheSync(e.ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	t.Logf("per-namespace: informer synced in %v, holding %d Secrets for %d in use",
		time.Since(t0).Round(time.Millisecond), len(inf.GetStore().ListKeys()), n)
	for i := range 2 * n { // every Secret of the namespace changes once
		e.put(t, "per-namespace", fmt.Sprintf("s%03d", i), "k", val(1))
	}
	time.Sleep(time.Second)

	evs, err := e.c.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	for _, ua := range []string{"secretfs-per-secret", "secretfs-per-namespace"} {
		verbs := map[string]int{}
		total := 0
		for _, ev := range evs {
			if strings.HasPrefix(ev.UserAgent, ua) {
				verbs[ev.Verb]++
				total++
			}
		}
		t.Logf("apiserver requests by %s: %d %v", ua, total, verbs)
		if ua == "secretfs-per-secret" && (verbs["list"] != n || verbs["watch"] != n) {
			t.Errorf("per-Secret: want %d lists and %d watches, got %v", n, n, verbs)
		}
	}
	t.Logf("per-namespace: %d objects delivered to the process (2×%d adds+updates, half of them unused)", delivered.Load(), 2*n)
	t.Logf("apiserver RSS: %v", e.c.RSS())
}
