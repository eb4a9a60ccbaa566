//go:build linux

// The control plane of these tests (sanity/cluster) runs Linux builds of
// kube-apiserver and etcd.

package kube

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/sanity/cluster"
)

// classCRD is the SecretProviderClass CRD as the driver's module ships it.
func classCRD(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/secrets-store-csi-driver").Output()
	if err != nil {
		t.Fatalf("find the driver's module: %v", err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "charts/secrets-store-csi-driver/crds/secrets-store.csi.x-k8s.io_secretproviderclasses.yaml")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(text, &crd.Object); err != nil {
		t.Fatal(err)
	}
	return crd
}

// Classes are read from the real API, in the namespace asked only.
func TestGetClass(t *testing.T) {
	c := cluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dyn, err := dynamic.NewForConfig(c.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, classCRD(t), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"team-a", "team-b"} {
		if _, err := c.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	class := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
		"metadata": map[string]any{"name": "db", "namespace": "team-b"},
		"spec":     map[string]any{"provider": "vault", "parameters": map[string]any{"roleName": "app"}},
	}}
	// The CRD is served a moment after it is created.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := dyn.Resource(ClassResource).Namespace("team-b").Create(ctx, class, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r, err := NewClasses(c.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.GetClass(ctx, "team-b", "db")
	if err != nil {
		t.Fatal(err)
	}
	if got.Provider != "vault" || got.Parameters["roleName"] != "app" || got.Namespace != "team-b" {
		t.Errorf("got %+v", got)
	}
	if _, err := r.GetClass(ctx, "team-a", "db"); !errors.Is(err, backend.ErrClassNotFound) || !strings.Contains(err.Error(), "team-a/db") {
		t.Errorf("another namespace's class: %v, want not found naming team-a/db", err)
	}
	// An identity without RBAC on classes is refused: not "not found".
	tok, err := c.TokenFor(ctx, "default", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	weak, err := NewClasses(c.RestConfigFor(tok))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := weak.GetClass(ctx, "team-b", "db"); !errors.Is(err, backend.ErrForbidden) {
		t.Errorf("without RBAC: %v, want a refusal", err)
	}
}
