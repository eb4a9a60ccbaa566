//go:build unix

package file

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/secretfs/secretfs/backend"
)

func TestGetClass(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("app.yaml", `apiVersion: v1
kind: Secret
metadata: {name: s, namespace: team-a}
stringData: {password: "hunter2: not a class"}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: db
  namespace: team-a
spec:
  provider: vault
  parameters:
    roleName: app
    objects: |
      - objectName: db-password
`)
	write("list.json", `{"kind": "List", "items": [
	  {"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
	   "metadata": {"name": "nons"}, "spec": {"provider": "aws", "parameters": {"objects": "x"}}}]}`)
	write("old.yaml", "apiVersion: secrets-store.csi.x-k8s.io/v1alpha1\nkind: SecretProviderClass\nmetadata: {name: old, namespace: team-a}\nspec: {provider: vault}\n")
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := b.GetClass(ctx, "team-a", "db")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"roleName": "app", "objects": "- objectName: db-password\n"}
	if c.Provider != "vault" || !maps.Equal(c.Parameters, want) || c.Namespace != "team-a" || c.Name != "db" {
		t.Errorf("got %+v", c)
	}
	if c, err := b.GetClass(ctx, "default", "nons"); err != nil || c.Provider != "aws" {
		t.Errorf("class without namespace in a List: %+v %v", c, err)
	}
	for _, q := range [][2]string{{"team-b", "db"}, {"team-a", "old"}, {"team-a", "nope"}} {
		if _, err := b.GetClass(ctx, q[0], q[1]); !errors.Is(err, backend.ErrClassNotFound) || !strings.Contains(err.Error(), q[0]+"/"+q[1]) {
			t.Errorf("%s/%s: %v, want not found naming it", q[0], q[1], err)
		}
	}

	write("dup.yaml", "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: db, namespace: team-a}\nspec: {provider: vault}\n")
	if _, err := b.GetClass(ctx, "team-a", "db"); err == nil || !strings.Contains(err.Error(), "app.yaml") || !strings.Contains(err.Error(), "dup.yaml") {
		t.Errorf("a class defined twice: %v, want an error naming both files", err)
	}
	os.Remove(filepath.Join(dir, "dup.yaml"))

	// A broken file may hold the class: unreachable, never not found;
	// the error quotes none of its text.
	write("broken.yaml", "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: x}\nspec: {parameters: {a: [hunter2]}}\n")
	_, err = b.GetClass(ctx, "team-a", "nope")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "broken.yaml") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("with a broken file: %v", err)
	}
	if c, err := b.GetClass(ctx, "team-a", "db"); err != nil || c.Provider != "vault" {
		t.Errorf("a broken file hides a good class: %v", err)
	}
}
