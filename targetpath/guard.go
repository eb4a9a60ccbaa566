package targetpath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxPath is PATH_MAX: no longer path can name anything.
const maxPath = 4096

// Guard checks paths against one mount root.
type Guard struct {
	root   string // as configured: how kubelet names paths
	real   string // root with links resolved: how the mount table names them
	fsType string // no path may lie inside a mount of this type
}

// New returns the guard of root (absolute, clean, not `/`). fsType is the
// plugin's own mount type as mountinfo shows it ("fuse.secretfs").
func New(root, fsType string) (*Guard, error) {
	switch {
	case root == "" || !filepath.IsAbs(root):
		return nil, fmt.Errorf("mount root %q: not an absolute path", root)
	case filepath.Clean(root) != root:
		return nil, fmt.Errorf("mount root %q: not clean (want %q)", root, filepath.Clean(root))
	case root == "/":
		return nil, errors.New("mount root must not be /: it would let a target be anywhere")
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		real = root // not there yet: nothing below it can be published
	}
	return &Guard{root: root, real: real, fsType: fsType}, nil
}

// Root is the mount root as configured.
func (g *Guard) Root() string { return g.root }

// Path is a checked path.
type Path struct {
	Name string // as asked: absolute, clean, below the root, no links
	Real string // the same with the root's links resolved (mountinfo's name)
}

// Error says why a path is refused. It names the path (shortened if very
// long), never anything read from the filesystem.
type Error struct {
	Path   string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("path %s %s", quote(e.Path), e.Reason) }

// maxQuoted is as much of a path as a message quotes: a path may be 4096
// bytes, and a refusal names it and an element or mount point in it.
const maxQuoted = 256

// quote quotes s for a message, cut at maxQuoted bytes.
func quote(s string) string {
	if len(s) > maxQuoted {
		return fmt.Sprintf("%q…", s[:maxQuoted])
	}
	return fmt.Sprintf("%q", s)
}

func refuse(path, format string, args ...any) error {
	return &Error{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// Check applies the rules of the package comment, the cheap lexical ones
// first, and touches nothing: it lstats elements, statfs's a folder and
// reads the mount table only when that folder is on FUSE. A missing last
// element (or a missing folder on the way) is fine: publish creates the
// target. A dead mount at the last element (ENOTCONN) is fine too: the
// caller decides whether it is its own. A path both inside a mount and
// through a link is refused as inside (the clearer reason).
func (g *Guard) Check(path string) (Path, error) {
	switch {
	case path == "":
		return Path{}, refuse(path, "is empty")
	case len(path) > maxPath:
		return Path{}, refuse(path, "is longer than %d bytes", maxPath)
	case strings.IndexByte(path, 0) >= 0:
		return Path{}, refuse(path, "contains a NUL byte")
	case !filepath.IsAbs(path):
		return Path{}, refuse(path, "is not absolute")
	case filepath.Clean(path) != path:
		return Path{}, refuse(path, "is not clean (a `.` or `..` element, or a doubled or trailing slash)")
	}
	p := Path{Name: path}
	if rest, ok := strings.CutPrefix(path, g.root+"/"); ok {
		p.Real = g.real + "/" + rest
	} else if rest, ok := strings.CutPrefix(path, g.real+"/"); ok {
		p.Real = g.real + "/" + rest
	} else {
		return Path{}, refuse(path, "is not below the mount root %q", g.root)
	}
	dir, linkErr := g.walk(p)
	if mp, err := g.inside(p, dir); err != nil {
		return Path{}, refuse(path, "cannot be checked: %v", err)
	} else if mp != "" {
		return Path{}, refuse(path, "lies inside the %s mount at %s", g.fsType, quote(mp))
	}
	if linkErr != nil {
		return Path{}, linkErr
	}
	return p, nil
}

// walk lstats each element below the root and returns the deepest folder
// on the way that exists (the last element aside: it is the target), for
// inside to look at, and the refusal of a link or of an element that
// cannot be checked. lstat never follows the last link of a path, so
// checking every prefix in turn follows none.
func (g *Guard) walk(p Path) (dir string, err error) {
	base := g.root
	rest, ok := strings.CutPrefix(p.Name, base+"/")
	if !ok {
		base = g.real
		rest, _ = strings.CutPrefix(p.Name, base+"/")
	}
	elems := strings.Split(rest, "/")
	dir, cur := base, base
	for i, e := range elems {
		cur += "/" + e
		last := i == len(elems)-1
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR):
			return dir, nil // nothing there: no link either
		case errors.Is(err, syscall.ENOTCONN) && last:
			return dir, nil // a dead mount at the target: the caller's call
		case err != nil:
			return dir, refuse(p.Name, "cannot be checked at %s: %v", quote(cur), errnoOf(err))
		case fi.Mode()&os.ModeSymlink != 0:
			return dir, refuse(p.Name, "has a symbolic link at %s", quote(cur))
		}
		if !last && fi.IsDir() {
			dir = cur
		}
	}
	return dir, nil
}

// errnoOf keeps only the errno of a filesystem error (its path is the
// caller's to name).
func errnoOf(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
