package csi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretfs/secretfs/sanity/mountns"
)

// These tests send the plugin what a careless or hostile caller of its
// socket would, and check that it harms nothing (SPEC §4 "Safety on the
// node"). They run only inside a private mount namespace, with every
// target below the test's temp folder: `/` is sent only there.

// snapshot is what a path holds, to prove a refused call touched nothing.
type snapshot struct {
	path   string
	mode   os.FileMode
	link   string   // a symlink's target
	data   string   // a file's content
	names  []string // a folder's entries
	mounts int
	exists bool
}

func snap(t *testing.T, path string) snapshot {
	t.Helper()
	s := snapshot{path: path, mounts: mountCount(t, path)}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s
	case errors.Is(err, syscall.ENOTCONN):
		s.exists, s.link = true, "(a dead mount)"
		return s
	}
	must(t, err)
	s.exists, s.mode = true, fi.Mode()
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		s.link, err = os.Readlink(path)
	case fi.IsDir():
		var ents []os.DirEntry
		ents, err = os.ReadDir(path)
		for _, e := range ents {
			s.names = append(s.names, e.Name())
		}
	default:
		var b []byte
		b, err = os.ReadFile(path)
		s.data = string(b)
	}
	must(t, err)
	return s
}

func (s snapshot) same(t *testing.T) {
	t.Helper()
	now := snap(t, s.path)
	if now.exists != s.exists || now.mode != s.mode || now.link != s.link || now.data != s.data ||
		strings.Join(now.names, "/") != strings.Join(s.names, "/") || now.mounts != s.mounts {
		t.Errorf("%s changed: was %+v, now %+v", s.path, s, now)
	}
}

// hostileReq is a valid publish of Secret default/s at target.
// hostileReq publishes at any target: its volume id is a PV's (an
// inline id is bound to kubelet's target shape, podtarget.go), its
// namespace the pod's.
func (p *plugin) hostileReq(name, target string) *csi.NodePublishVolumeRequest {
	req, _ := p.inline(pod{ns: "default", name: name}, "v", map[string]string{"secretName": "s"}, nil)
	req.VolumeId = "pv-" + name
	req.TargetPath = target
	return req
}

func (p *plugin) unpublishAt(id, target string) error {
	_, err := p.node.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
	return err
}

func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	mountns.Require(t)
	must(t, os.MkdirAll(dir, 0o750))
	must(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"))
	must(t, os.WriteFile(filepath.Join(dir, "precious"), []byte("keep me"), 0o600))
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// wantRefused checks the code, that the message names the path, and that
// the snapshots are unchanged.
func wantRefused(t *testing.T, err error, code codes.Code, path string, keep ...snapshot) {
	t.Helper()
	wantCode(t, err, code)
	if msg := status.Convert(err).Message(); path != "" && !strings.Contains(msg, path) {
		t.Errorf("message %q does not name %s", msg, path)
	}
	for _, s := range keep {
		s.same(t)
	}
}

func TestHostileTargets(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	mountns.Require(t)
	p := startPlugin(t)
	p.writeSecret("default", "s", map[string]string{"k": "v"})
	pods := filepath.Join(p.dir, "pods")
	must(t, os.MkdirAll(pods, 0o750))
	outside := t.TempDir() // not below the mount root
	must(t, os.WriteFile(filepath.Join(outside, "file"), []byte("outside"), 0o600))

	// A published volume, for the nesting cases.
	live := filepath.Join(pods, "live", "mount")
	must(t, os.MkdirAll(filepath.Dir(live), 0o750))
	liveReq := p.hostileReq("live", live)
	p.mustPublish(liveReq)

	invalid := []struct{ name, target string }{
		{"relative", "pods/x/mount"},
		{"dot-dot", pods + "/../pods/x/mount"},
		{"dot-dot escaping the root", pods + "/../../" + filepath.Base(outside)},
		{"dot", pods + "/./x"},
		{"doubled slash", pods + "//x"},
		{"trailing slash", pods + "/x/"},
		{"outside the root", outside},
		{"the mount root itself", p.dir},
		{"slash", "/"},
		{"proc", "/proc"},
		{"dev", "/dev"},
		{"sys", "/sys"},
		{"NUL byte", pods + "/x\x00y"},
		{"inside a secretfs volume (..data)", live + "/..data"},
		{"inside a secretfs volume (a key)", live + "/k"},
		{"inside a secretfs volume (deeper)", live + "/..data/new"},
	}
	for _, c := range invalid {
		t.Run("publish "+c.name, func(t *testing.T) {
			keep := []snapshot{snap(t, outside), snap(t, live), snap(t, "/")}
			err := p.publish(p.hostileReq("x", c.target))
			wantRefused(t, err, codes.InvalidArgument, "", keep...)
		})
		t.Run("unpublish "+c.name, func(t *testing.T) {
			keep := []snapshot{snap(t, outside), snap(t, live), snap(t, "/")}
			err := p.unpublishAt(liveReq.VolumeId, c.target)
			wantRefused(t, err, codes.InvalidArgument, "", keep...)
		})
	}
	wantFiles(t, live, map[string]string{"k": "v"})
	if _, err := os.Stat("/proc/self/mountinfo"); err != nil {
		t.Fatalf("/proc is gone: %v", err)
	}

	t.Run("symlinked target", func(t *testing.T) {
		link := filepath.Join(pods, "link", "mount")
		must(t, os.MkdirAll(filepath.Dir(link), 0o750))
		must(t, os.Symlink(outside, link))
		keep := []snapshot{snap(t, link), snap(t, outside)}
		wantRefused(t, p.publish(p.hostileReq("link", link)), codes.InvalidArgument, link, keep...)
		wantRefused(t, p.unpublishAt("x", link), codes.InvalidArgument, link, keep...)
	})
	t.Run("symlinked parent", func(t *testing.T) {
		parent := filepath.Join(pods, "linkparent")
		must(t, os.Symlink(outside, parent))
		target := filepath.Join(parent, "mount")
		keep := []snapshot{snap(t, parent), snap(t, outside)}
		wantRefused(t, p.publish(p.hostileReq("lp", target)), codes.InvalidArgument, target, keep...)
		wantRefused(t, p.unpublishAt("x", filepath.Join(parent, "file")), codes.InvalidArgument, "", keep...)
	})
	t.Run("symlink to a live volume", func(t *testing.T) {
		link := filepath.Join(pods, "tolive")
		must(t, os.Symlink(live, link))
		keep := snap(t, live)
		wantRefused(t, p.unpublishAt(liveReq.VolumeId, link), codes.InvalidArgument, link, keep)
		wantFiles(t, live, map[string]string{"k": "v"})
	})

	t.Run("unpublish a live volume under another id", func(t *testing.T) {
		keep := snap(t, live)
		must(t, p.unpublishAt("csi-"+strings.Repeat("0", 64), live))
		keep.same(t)
		wantFiles(t, live, map[string]string{"k": "v"})
	})
	t.Run("unpublish below a file", func(t *testing.T) {
		file := filepath.Join(pods, "plainfile")
		must(t, os.WriteFile(file, []byte("keep me"), 0o600))
		keep := snap(t, file)
		must(t, p.unpublishAt("csi-x", file+"/mount"))
		keep.same(t)
	})
	t.Run("unpublish foreign tmpfs", func(t *testing.T) {
		dir := filepath.Join(pods, "tmpfs", "mount")
		mountTmpfs(t, dir)
		keep := snap(t, dir)
		wantRefused(t, p.unpublishAt("csi-x", dir), codes.FailedPrecondition, dir, keep)
		if b, err := os.ReadFile(filepath.Join(dir, "precious")); err != nil || string(b) != "keep me" {
			t.Errorf("tmpfs file: %q %v", b, err)
		}
	})
	t.Run("unpublish non-empty folder", func(t *testing.T) {
		dir := filepath.Join(pods, "full", "mount")
		must(t, os.MkdirAll(dir, 0o750))
		must(t, os.WriteFile(filepath.Join(dir, "precious"), []byte("keep me"), 0o600))
		keep := snap(t, dir)
		must(t, p.unpublishAt("csi-x", dir))
		keep.same(t)
	})
	t.Run("unpublish empty folder never published", func(t *testing.T) {
		dir := filepath.Join(pods, "empty", "mount")
		must(t, os.MkdirAll(dir, 0o750))
		keep := snap(t, dir)
		must(t, p.unpublishAt("csi-x", dir))
		keep.same(t)
	})
	t.Run("unpublish file", func(t *testing.T) {
		file := filepath.Join(pods, "file", "mount")
		must(t, os.MkdirAll(filepath.Dir(file), 0o750))
		must(t, os.WriteFile(file, []byte("keep me"), 0o600))
		keep := snap(t, file)
		must(t, p.unpublishAt("csi-x", file))
		keep.same(t)
	})
	t.Run("unpublish another's dead secretfs mount", func(t *testing.T) {
		// A workstation `secretfs mount` (source "secretfs") that died:
		// not the plugin's to clean.
		dir := filepath.Join(pods, "ws", "mount")
		deadMountAs(t, dir, "secretfs")
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		keep := snap(t, dir)
		wantRefused(t, p.unpublishAt("csi-x", dir), codes.FailedPrecondition, dir, keep)
	})
	t.Run("unpublish our dead mount of an earlier process", func(t *testing.T) {
		dir := filepath.Join(pods, "old", "mount")
		deadMountAs(t, dir, mountSource)
		must(t, p.unpublishAt("csi-x", dir))
		if n := mountCount(t, dir); n != 0 {
			t.Errorf("%d mounts left", n)
		}
		wantAbsent(t, dir)
	})
	t.Run("unpublish with a tmpfs stacked over our volume", func(t *testing.T) {
		dir := filepath.Join(pods, "stacked", "mount")
		must(t, os.MkdirAll(filepath.Dir(dir), 0o750))
		req := p.hostileReq("stacked", dir)
		p.mustPublish(req)
		if mt := p.d.mounts.get(dir); mt == nil || mt.mntID == 0 {
			t.Fatalf("the publish noted no mount id: %+v", mt)
		}
		mountTmpfs(t, dir)
		keep := snap(t, dir)
		wantRefused(t, p.unpublishAt(req.VolumeId, dir), codes.FailedPrecondition, dir, keep)
		must(t, syscall.Unmount(dir, 0))
		must(t, p.unpublishAt(req.VolumeId, dir))
		wantAbsent(t, dir)
	})
}

// A failed publish removes only the folder it made itself.
func TestFailedPublishLeavesTarget(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	p := startPlugin(t)
	p.writeSecret("default", "present", map[string]string{"k": "v"})
	pods := filepath.Join(p.dir, "pods")
	outside := t.TempDir()
	// Secret default/s is missing: every publish below fails (NotFound),
	// or is refused before that.
	cases := []struct {
		name  string
		make  func(t *testing.T, target string)
		code  codes.Code
		after func(t *testing.T, target string, before snapshot)
	}{
		{"nothing there", func(*testing.T, string) {}, codes.NotFound,
			func(t *testing.T, target string, _ snapshot) { wantAbsent(t, target) }},
		{"empty folder", func(t *testing.T, tg string) { must(t, os.Mkdir(tg, 0o750)) }, codes.NotFound, nil},
		{"folder with a file", func(t *testing.T, tg string) {
			must(t, os.Mkdir(tg, 0o750))
			must(t, os.WriteFile(filepath.Join(tg, "precious"), []byte("keep me"), 0o600))
		}, codes.FailedPrecondition, nil}, // never mounted over: it would hide the file
		{"file", func(t *testing.T, tg string) { must(t, os.WriteFile(tg, []byte("keep me"), 0o600)) }, codes.FailedPrecondition, nil},
		{"symlink to a folder", func(t *testing.T, tg string) { must(t, os.Symlink(outside, tg)) }, codes.InvalidArgument, nil},
		{"dangling symlink", func(t *testing.T, tg string) { must(t, os.Symlink(filepath.Join(outside, "none"), tg)) }, codes.InvalidArgument, nil},
		{"foreign tmpfs", func(t *testing.T, tg string) { mountTmpfs(t, tg) }, codes.AlreadyExists, nil},
		{"another's dead secretfs mount", func(t *testing.T, tg string) {
			deadMountAs(t, tg, "secretfs")
			t.Cleanup(func() { syscall.Unmount(tg, syscall.MNT_DETACH) })
		}, codes.AlreadyExists, nil},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := filepath.Join(pods, itoa(i+1), "mount")
			must(t, os.MkdirAll(filepath.Dir(target), 0o750))
			c.make(t, target)
			before := snap(t, target)
			keepOutside := snap(t, outside)
			err := p.publish(p.hostileReq("f"+itoa(i+1), target))
			wantCode(t, err, c.code)
			if msg := status.Convert(err).Message(); c.code == codes.FailedPrecondition && !strings.Contains(msg, target) {
				t.Errorf("message %q does not name the target", msg)
			}
			keepOutside.same(t)
			if c.after != nil {
				c.after(t, target, before)
			} else {
				before.same(t)
			}
		})
	}
	t.Run("a dead mount of ours is cleaned and mounted again", func(t *testing.T) {
		target := filepath.Join(pods, "dead", "mount")
		deadMountAs(t, target, mountSource)
		req := p.hostileReq("dead", target)
		req.VolumeContext[attrSecretName] = "present"
		p.mustPublish(req)
		wantFiles(t, target, map[string]string{"k": "v"})
		if n := mountCount(t, target); n != 1 {
			t.Errorf("%d mounts, want 1", n)
		}
	})
}

// deadMountAs leaves a FUSE mount of type fuse.secretfs with the given
// source at dir, its server gone.
func deadMountAs(t *testing.T, dir, source string) {
	t.Helper()
	mountns.Require(t)
	must(t, os.MkdirAll(dir, 0o750))
	fd, err := syscall.Open("/dev/fuse", syscall.O_RDWR, 0)
	must(t, err)
	opts := "fd=" + itoa(fd) + ",rootmode=40000,user_id=0,group_id=0"
	must(t, syscall.Mount(source, dir, fsType, syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV, opts))
	syscall.Close(fd)
	if _, err := os.Stat(dir); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("stat of the dead mount: %v, want ENOTCONN", err)
	}
}
