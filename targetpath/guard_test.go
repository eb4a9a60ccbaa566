package targetpath_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/secretfs/secretfs/sanity/mountns"
	"github.com/secretfs/secretfs/targetpath"
)

func TestNew(t *testing.T) {
	for _, root := range []string{"", "relative", "/a/../b", "/a/", "/"} {
		if _, err := targetpath.New(root, "fuse.x"); err == nil {
			t.Errorf("New(%q) accepted", root)
		}
	}
}

// Lexical rules and links need no mounts: the guard only reads.
func TestCheck(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	g, err := targetpath.New(root, "fuse.secretfs")
	must(t, err)
	must(t, os.MkdirAll(filepath.Join(root, "pods", "a"), 0o750))
	must(t, os.Symlink(outside, filepath.Join(root, "pods", "link")))
	must(t, os.Symlink(outside, filepath.Join(root, "pods", "a", "mount-link")))
	must(t, os.WriteFile(filepath.Join(root, "pods", "file"), nil, 0o600))

	ok := []string{
		root + "/pods/a/mount",         // missing last element: publish makes it
		root + "/pods/a",               // an existing folder
		root + "/pods/missing/a/mount", // missing folders on the way
		root + "/pods/file",            // a file (unpublish leaves it)
		root + "/pods/file/below",      // below a file: nothing there
	}
	for _, p := range ok {
		got, err := g.Check(p)
		if err != nil || got.Name != p || got.Real != p {
			t.Errorf("Check(%q) = %+v, %v; want it accepted as is", p, got, err)
		}
	}
	refused := map[string]string{
		"":                                     "empty",
		"pods/a/mount":                         "not absolute",
		root + "/pods/../pods/a/mount":         "not clean",
		root + "/pods/./a":                     "not clean",
		root + "//pods/a":                      "not clean",
		root + "/pods/a/":                      "not clean",
		root:                                   "not below the mount root",
		outside + "/x":                         "not below the mount root",
		"/":                                    "not below the mount root",
		root + "x/pods":                        "not below the mount root",
		root + "/pods/link":                    "symbolic link",
		root + "/pods/link/mount":              "symbolic link",
		root + "/pods/a/mount-link":            "symbolic link",
		root + "/pods/a\x00b":                  "NUL",
		root + "/" + strings.Repeat("a", 5000): "longer than",
	}
	for p, why := range refused {
		_, err := g.Check(p)
		var e *targetpath.Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), why) {
			t.Errorf("Check(%.80q) = %v; want refused: %s", p, err, why)
			continue
		}
		if len(p) < 300 && !strings.Contains(err.Error(), strconv.Quote(p)[1:len(strconv.Quote(p))-1]) {
			t.Errorf("Check(%q): message %q does not name the path", p, err)
		}
	}
}

// A root reached through a link: kubelet names paths through the link,
// the mount table by the real path; both are accepted and Real is the
// mount table's name.
func TestCheckLinkedRoot(t *testing.T) {
	real := t.TempDir()
	root := filepath.Join(t.TempDir(), "kubelet")
	must(t, os.Symlink(real, root))
	g, err := targetpath.New(root, "fuse.secretfs")
	must(t, err)
	for _, p := range []string{root + "/pods/x", real + "/pods/x"} {
		got, err := g.Check(p)
		if err != nil || got.Name != p || got.Real != real+"/pods/x" {
			t.Errorf("Check(%q) = %+v, %v", p, got, err)
		}
	}
}

// A path inside a mount of the guarded type is refused; a mount of
// another type, or exactly at the path, is not the guard's business.
func TestCheckNested(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	root := t.TempDir()
	g, err := targetpath.New(root, "tmpfs")
	must(t, err)
	vol := filepath.Join(root, "pods", "a", "mount")
	must(t, os.MkdirAll(vol, 0o750))
	mountns.Require(t)
	must(t, syscall.Mount("tmpfs", vol, "tmpfs", 0, "size=64k"))
	defer syscall.Unmount(vol, syscall.MNT_DETACH)
	if _, err := g.Check(vol); err != nil {
		t.Errorf("Check of the mount point itself: %v", err)
	}
	for _, p := range []string{vol + "/..data", vol + "/a/b"} {
		if _, err := g.Check(p); err == nil || !strings.Contains(err.Error(), "inside the tmpfs mount") {
			t.Errorf("Check(%q) = %v; want refused as nested", p, err)
		}
	}
	p, err := g.Check(vol)
	must(t, err)
	mi, err := p.Mount()
	if err != nil || mi == nil || mi.FSType != "tmpfs" {
		t.Errorf("Mount() = %+v, %v; want the tmpfs", mi, err)
	}
	other, err := g.Check(filepath.Join(root, "pods"))
	must(t, err)
	if mi, err := other.Mount(); err != nil || mi != nil {
		t.Errorf("Mount() of a plain folder = %+v, %v", mi, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A refusal quotes the path and the element or mount point it names cut
// to a bounded length, however long the elements are; and the tricky
// spellings of a path next to the root are refused.
func TestRefusalsAreShort(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "kubelet")
	must(t, os.MkdirAll(filepath.Join(root, "pods"), 0o750))
	must(t, os.MkdirAll(root+"-evil/pods", 0o750))
	must(t, os.Symlink(base, filepath.Join(root, "pods", "up")))
	long := strings.Repeat("b", 250)
	must(t, os.MkdirAll(filepath.Join(root, "pods", long, long), 0o750))
	must(t, os.Symlink(base, filepath.Join(root, "pods", long, long, long)))
	g, err := targetpath.New(root, "fuse.secretfs")
	must(t, err)
	refused := []string{
		root + "-evil/pods/x", root + "evil", root + "/", root + "/pods/", root + "//pods",
		root + "/pods/up/kubelet-evil", root + "/pods/up", root + "/pods/up/",
		root + "/pods/" + strings.Repeat("a/", 2100) + "m", root + "/pods/x\x00", "pods/x",
		root + "/pods/../../x", strings.ToUpper(root) + "/pods/x",
		filepath.Join(root, "pods", long, long, long, "m"), // a link deep in long names
	}
	for _, p := range refused {
		_, err := g.Check(p)
		if err == nil {
			t.Errorf("Check(%.80q) accepted", p)
			continue
		}
		if n := len(err.Error()); n > 700 {
			t.Errorf("Check(%.80q): a message of %d bytes: %.120s…", p, n, err)
		}
	}
	// Names that are odd but harmless pass.
	for _, p := range []string{root + "/pods/\u00e9/m", root + "/pods/a\nb/m", root + "/pods/ /m"} {
		if _, err := g.Check(p); err != nil {
			t.Errorf("Check(%q): %v", p, err)
		}
	}
}
