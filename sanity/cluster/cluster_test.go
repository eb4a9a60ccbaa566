package cluster

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestControlPlane: a Secret survives an apiserver restart (etcd kept), the
// audit log counts gets and watches per user, and TokenFor yields a working
// (unprivileged) ServiceAccount identity.
func TestControlPlane(t *testing.T) {
	t0 := time.Now()
	c := Start(t)
	t.Logf("start to ready: %v (includes any build)", time.Since(t0).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	secrets := c.Client().CoreV1().Secrets("default")

	want := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s1"}, Data: map[string][]byte{"password": []byte("hunter2")}}
	if _, err := secrets.Create(ctx, want, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func() {
		t.Helper()
		s, err := secrets.Get(ctx, "s1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(s.Data["password"]) != "hunter2" {
			t.Fatalf("data = %q", s.Data)
		}
	}
	get()
	w, err := secrets.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=s1"})
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	t.Logf("RSS MiB: %v", mib(c.RSS()))

	if err := c.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.Get(ctx, "s1", metav1.GetOptions{}); err == nil {
		t.Fatal("get succeeded with the apiserver stopped")
	}
	t1 := time.Now()
	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("apiserver restart to ready: %v", time.Since(t1).Round(time.Millisecond))
	get()

	secretGets := AuditEvent{User: "admin", Verb: "get", Resource: "secrets", Namespace: "default", Name: "s1"}
	if n, err := c.WaitAudit(ctx, secretGets, 2); err != nil {
		t.Fatal(err)
	} else if n != 2 {
		t.Errorf("audited %d gets of s1, want 2 (the one refused while down never reached it)", n)
	}
	if _, err := c.WaitAudit(ctx, AuditEvent{User: "admin", Verb: "watch", Resource: "secrets"}, 1); err != nil {
		t.Fatal(err)
	}

	tok, err := c.TokenFor(ctx, "default", "reader")
	if err != nil {
		t.Fatal(err)
	}
	ro, err := c.ClientFor(tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.CoreV1().Secrets("default").Get(ctx, "s1", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("reader without RBAC: err = %v, want Forbidden", err)
	}
	if _, err := c.WaitAudit(ctx, AuditEvent{User: "system:serviceaccount:default:reader", Verb: "get", Resource: "secrets"}, 1); err != nil {
		t.Fatal(err)
	}
}

func mib(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		out[k] = v >> 20
	}
	return out
}
