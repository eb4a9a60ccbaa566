//go:build linux

// The control plane of these tests (sanity/cluster) runs Linux builds of
// kube-apiserver and etcd.

package kube

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/sanity/cluster"
)

// env is a real control plane plus an admin client and our backend on it.
type env struct {
	c   *cluster.Cluster
	api kubernetes.Interface
	b   *Backend
	ctx context.Context
}

func start(t *testing.T) *env {
	t.Helper()
	c := cluster.Start(t)
	b, err := New(c.RestConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return &env{c: c, api: c.Client(), b: b, ctx: ctx}
}

func (e *env) namespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := e.api.CoreV1().Namespaces().Create(e.ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) put(t *testing.T, ns, name string, kv ...string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Data[kv[i]] = []byte(kv[i+1])
	}
	api := e.api.CoreV1().Secrets(ns)
	got, err := api.Update(e.ctx, s, metav1.UpdateOptions{})
	if err != nil {
		got, err = api.Create(e.ctx, s, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (e *env) del(t *testing.T, ns, name string) {
	t.Helper()
	if err := e.api.CoreV1().Secrets(ns).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// watching runs Watch in the background; its events arrive on the channel
// stamped with their arrival time. The watch ends at test cleanup.
type stamped struct {
	backend.Event
	at time.Time
}

func (e *env) watch(t *testing.T, ref backend.Ref) (<-chan stamped, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	ch := make(chan stamped, 1024)
	done := make(chan error, 1)
	go func() {
		done <- e.b.Watch(ctx, ref, func(ev backend.Event) { ch <- stamped{ev, time.Now()} })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != context.Canceled {
				t.Errorf("Watch returned %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Watch did not return after cancel")
		}
	})
	return ch, done
}

func next(t *testing.T, ch <-chan stamped, within time.Duration) stamped {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
		return stamped{}
	}
}

// wantData fails unless ev carries a Secret whose key k holds v.
func wantData(t *testing.T, ev stamped, k, v string) {
	t.Helper()
	if ev.Err != nil || ev.Deleted || ev.Secret == nil {
		t.Fatalf("event %+v, want a Secret with %s=%s", ev.Event, k, v)
	}
	if got := string(ev.Secret.Data[k]); got != v {
		t.Fatalf("key %s = %q, want %q", k, got, v)
	}
}

func wantDeleted(t *testing.T, ev stamped) {
	t.Helper()
	if !ev.Deleted || ev.Secret != nil || ev.Err != nil {
		t.Fatalf("event %+v, want Deleted", ev.Event)
	}
}

func quiet(t *testing.T, ch <-chan stamped, d time.Duration) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %+v", ev.Event)
	case <-time.After(d):
	}
}

func ref(ns, name string) backend.Ref { return backend.Ref{Namespace: ns, Name: name} }

func val(i int) string { return fmt.Sprintf("v%04d", i) }
