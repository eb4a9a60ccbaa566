//go:build linux

// The control plane of these tests (sanity/cluster) runs Linux builds of
// kube-apiserver and etcd.

package kube

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/secret"
)

func TestGet(t *testing.T) {
	e := start(t)
	obj := e.put(t, "default", "creds", "username", "admin", ".hidden", "dot")

	s, err := e.b.Get(e.ctx, ref("default", "creds"))
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data["username"]) != "admin" || string(s.Data[".hidden"]) != "dot" || len(s.Data) != 2 {
		t.Fatalf("data keys %v", keys(s))
	}
	if s.Type != "Opaque" || s.Origin != Origin || s.ResourceVersion != obj.ResourceVersion || s.Ref() != "default/creds" {
		t.Fatalf("got %+v", s)
	}

	_, err = e.b.Get(e.ctx, ref("default", "nope"))
	if !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), "default/nope") {
		t.Fatalf("missing: %v", err)
	}
}

// The service-account-token type needs its annotation: convert must copy
// annotations before validating (secret.FromData would reject it).
func TestGetServiceAccountTokenType(t *testing.T) {
	e := start(t)
	tru := true
	obj := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sa-tok", Namespace: "default",
			Annotations: map[string]string{"kubernetes.io/service-account.name": "default"}},
		Type: corev1.SecretTypeServiceAccountToken, Immutable: &tru,
		Data: map[string][]byte{"token": []byte("x")},
	}
	if _, err := e.api.CoreV1().Secrets("default").Create(e.ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := e.b.Get(e.ctx, ref("default", "sa-tok"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Immutable || s.Annotations["kubernetes.io/service-account.name"] != "default" {
		t.Fatalf("got %+v", s)
	}
}

// The apiserver does not check bootstrap tokens' contents; we do.
func TestGetInvalid(t *testing.T) {
	e := start(t)
	bad := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-abcdef", Namespace: "default"},
		Type:       "bootstrap.kubernetes.io/token",
		Data:       map[string][]byte{"token-id": []byte("abcdef")},
	}
	if _, err := e.api.CoreV1().Secrets("default").Create(e.ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.b.Get(e.ctx, ref("default", "bootstrap-token-abcdef"))
	var inv *secret.InvalidError
	if !errors.As(err, &inv) || !strings.Contains(err.Error(), `"token-secret"`) ||
		!strings.Contains(err.Error(), "default/bootstrap-token-abcdef") {
		t.Fatalf("got %v, want an InvalidError naming key token-secret", err)
	}
}

func TestGetUnreachable(t *testing.T) {
	e := start(t)
	if err := e.c.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	_, err := e.b.Get(e.ctx, ref("default", "x"))
	var inv *secret.InvalidError
	if err == nil || errors.Is(err, backend.ErrNotFound) || errors.As(err, &inv) ||
		!strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("got %v, want unreachable", err)
	}
}

func keys(s *secret.Secret) []string {
	var out []string
	for k := range s.Data {
		out = append(out, k)
	}
	return out
}
