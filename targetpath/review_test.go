package targetpath_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretfs/secretfs/targetpath"
)

func TestReviewGuardProbes(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "kubelet")
	must(t, os.MkdirAll(filepath.Join(root, "pods"), 0o750))
	must(t, os.MkdirAll(root+"-evil/pods", 0o750))
	must(t, os.Symlink(base, filepath.Join(root, "pods", "up")))
	g, err := targetpath.New(root, "fuse.secretfs")
	must(t, err)
	long := root + "/pods/" + strings.Repeat("a/", 2100) + "m"
	elem := root + "/pods/" + strings.Repeat("x", 300) + "/m"
	bad := []string{
		root + "-evil/pods/x", root + "evil", root + "/", root + "/pods/", root + "//pods",
		root + "/pods/up/kubelet-evil", root + "/pods/up", root + "/pods/up/",
		long, elem, root + "/pods/x\x00", "pods/x", root + "/pods/../../x",
		strings.ToUpper(root) + "/pods/x",
	}
	for _, p := range bad {
		if _, err := g.Check(p); err == nil {
			t.Errorf("HOLE: accepted %.80q", p)
		} else if len(err.Error()) > 1024 {
			t.Errorf("error of %d bytes for %.40q", len(err.Error()), p)
		}
	}
	okp := []string{root + "/pods/\u00e9/m", root + "/pods/a\nb/m", root + "/pods/ /m"}
	for _, p := range okp {
		if _, err := g.Check(p); err != nil {
			t.Logf("refused %q: %v", p, err)
		}
	}
	// Error text length for a long refused path with cur
	must(t, os.MkdirAll(root+"/pods/"+strings.Repeat("b", 250), 0o750))
	lk := root + "/pods/" + strings.Repeat("b", 250) + "/" + strings.Repeat("c", 250)
	must(t, os.Symlink(base, lk))
	if _, err := g.Check(lk + "/m"); err != nil {
		t.Logf("long link refusal is %d bytes", len(err.Error()))
	}
}
