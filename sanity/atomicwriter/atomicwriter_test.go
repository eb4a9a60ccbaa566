package atomicwriter

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The layout of kubelet's secret volume (FACTS.md): `..data` to the one
// version folder, a link per top-level name (a nested path's first
// element only), the old version and the links of removed names gone.
func TestLayout(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, map[string][]byte{"a": []byte("1"), "g/x": []byte("2"), ".dot": []byte("3")}); err != nil {
		t.Fatal(err)
	}
	first, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := Write(dir, map[string][]byte{"b": []byte("4"), "g/x": []byte("5"), ".dot": []byte("3")}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "..20") {
			n = "..TS"
		}
		names = append(names, n)
	}
	if want := []string{"..TS", "..data", ".dot", "b", "g"}; !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
	second, _ := os.Readlink(filepath.Join(dir, "..data"))
	if second == first || !strings.HasPrefix(second, "..20") {
		t.Errorf("..data %q after %q", second, first)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "g")); l != "..data/g" {
		t.Errorf("g -> %q", l)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "g", "x")); err != nil || string(b) != "5" {
		t.Errorf("g/x: %q, %v", b, err)
	}
}
