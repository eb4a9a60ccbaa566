package csi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/moby/sys/mountinfo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/keeper"
	"github.com/secretfs/secretfs/sanity/mountns"
)

// These tests send the plugin what a careless or hostile caller of its
// socket would, and check that it harms nothing (the rules of
// target.go and package targetpath). They run only inside a private mount namespace, with every
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
	t.Run("a dead mount of ours gets the volume on top", func(t *testing.T) {
		target := filepath.Join(pods, "dead", "mount")
		deadMountAs(t, target, mountSource)
		req := p.hostileReq("dead", target)
		req.VolumeContext[attrSecretName] = "present"
		p.mustPublish(req)
		wantFiles(t, target, map[string]string{"k": "v"})
		if n := mountCount(t, target); n != 2 {
			t.Errorf("%d mounts, want the volume over the dead one", n)
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

// stackDeadMount mounts a FUSE mount of type fuse.secretfs with the given
// source at dir, over whatever is there, its server gone at once.
func stackDeadMount(t *testing.T, dir, source string) {
	t.Helper()
	mountns.Require(t)
	fd, err := syscall.Open("/dev/fuse", syscall.O_RDWR, 0)
	must(t, err)
	opts := "fd=" + itoa(fd) + ",rootmode=40000,user_id=0,group_id=0"
	err = syscall.Mount(source, dir, fsType, syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV, opts)
	syscall.Close(fd)
	must(t, err)
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// mountSources lists the sources of the mounts at path, bottom to top.
func mountSources(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	must(t, err)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || f[4] != path {
			continue
		}
		for i, x := range f {
			if x == "-" && i+2 < len(f) {
				out = append(out, f[i+2])
			}
		}
	}
	return out
}

// A workstation's secretfs mount (same type, source "secretfs") stacked
// over a published volume is someone else's: unpublish and UnmountAll
// leave it, and the volume stays known for a later unpublish. A volume
// taken back from the keeper has no id noted at publish: mounts.put
// notes it, and without one only a mount of ours passes onTop.
func TestForeignSecretfsOnTopSurvives(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	mountns.Require(t)
	p := startPlugin(t)
	p.writeSecret("default", "s", map[string]string{"k": "v"})
	for _, c := range []struct {
		name   string
		forget bool // drop the id noted at publish, as after a takeover
	}{{"published here", false}, {"taken back, no id", true}} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(p.dir, "pods", "stack-"+itoa(len(c.name)), "mount")
			must(t, os.MkdirAll(filepath.Dir(dir), 0o750))
			req := p.hostileReq("stack"+itoa(len(c.name)), dir)
			p.mustPublish(req)
			mt := p.d.mounts.get(dir)
			if c.forget {
				noted := mt.mntID
				mt.mntID = 0
				p.d.mounts.put(dir, mt) // what Resume does
				if mt.mntID != noted || noted == 0 {
					t.Fatalf("put noted mount id %d, want the volume's %d", mt.mntID, noted)
				}
				mt.mntID = 0 // now the fallback: ours by type, source and root
			}
			stackDeadMount(t, dir, "secretfs")
			want := []string{mountSource, "secretfs"}
			err := p.unpublishAt(req.VolumeId, dir)
			wantCode(t, err, codes.FailedPrecondition)
			if got := mountSources(t, dir); !slices.Equal(got, want) {
				t.Errorf("after unpublish the mounts at the target are %v, want %v", got, want)
			}
			p.d.UnmountAll()
			if got := mountSources(t, dir); !slices.Equal(got, want) {
				t.Errorf("after UnmountAll the mounts at the target are %v, want %v", got, want)
			}
			if p.d.mounts.get(dir) == nil {
				t.Fatalf("the volume under the foreign mount was forgotten")
			}
			// The foreign mount gone (its owner unmounted it), the
			// volume unpublishes.
			must(t, syscall.Unmount(dir, 0))
			must(t, p.unpublishAt(req.VolumeId, dir))
			if got := mountSources(t, dir); len(got) != 0 {
				t.Errorf("after the unpublish: mounts %v at the target", got)
			}
		})
	}
}

// CleanupStale unmounts a dead mount of ours only while it is the topmost
// at its path (umount(2) takes the topmost): a dead workstation mount
// stacked over it is left, and so is ours beneath.
func TestCleanupStaleOnlyTopmost(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	mountns.Require(t)
	p := startPlugin(t)
	dir := filepath.Join(p.dir, "pods", "stale", "mount")
	deadMountAs(t, dir, mountSource)
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	stackDeadMount(t, dir, "secretfs")
	n, err := p.d.CleanupStale()
	if err != nil || n != 0 {
		t.Errorf("CleanupStale: %d cleaned, %v; want 0, nil", n, err)
	}
	if got, want := mountSources(t, dir), []string{mountSource, "secretfs"}; !slices.Equal(got, want) {
		t.Errorf("mounts at the path %v, want %v", got, want)
	}
	// Alone, the same dead mount of ours is cleaned.
	must(t, syscall.Unmount(dir, syscall.MNT_DETACH))
	if n, err := p.d.CleanupStale(); err != nil || n != 1 || mountCount(t, dir) != 0 {
		t.Errorf("CleanupStale of our dead mount alone: %d cleaned, %v, %d mounts left", n, err, mountCount(t, dir))
	}
}

// kubelet's subPath bind mount of a file of a volume shows our type and
// source but another root ("/k"): isOurs says it is kubelet's, so that
// once its server is gone CleanupStale and unpublish leave it (a bind of
// a file stays served from the kernel's cache for an hour after its
// server died, so the dead case itself is not waited for here).
func TestSubPathBindIsNotOurs(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	mountns.Require(t)
	p := startPlugin(t)
	p.writeSecret("default", "s", map[string]string{"k": "v"})
	req, vol := p.inline(pod{ns: "default", name: "sub"}, "v", map[string]string{"secretName": "s"}, nil)
	p.mustPublish(req)
	sub := filepath.Join(p.dir, "pods", "default-sub-uid", "volume-subpaths", "v", "c", "0")
	must(t, os.MkdirAll(filepath.Dir(sub), 0o750))
	must(t, os.WriteFile(sub, nil, 0o600))
	must(t, syscall.Mount(filepath.Join(vol, "k"), sub, "", syscall.MS_BIND, ""))
	t.Cleanup(func() { syscall.Unmount(sub, syscall.MNT_DETACH) })
	infos, err := mountinfo.GetMounts(func(mi *mountinfo.Info) (bool, bool) {
		return mi.Mountpoint != vol && mi.Mountpoint != sub, false
	})
	must(t, err)
	if len(infos) != 2 {
		t.Fatalf("%d mounts at the volume and its subPath, want 2", len(infos))
	}
	for _, mi := range infos {
		if want := mi.Mountpoint == vol; isOurs(mi) != want || mi.FSType != fsType || mi.Source != mountSource {
			t.Errorf("mount at %s (root %q, %s, %s): isOurs %v, want %v", mi.Mountpoint, mi.Root, mi.FSType, mi.Source, !want, want)
		}
	}
	if n, err := p.d.CleanupStale(); err != nil || n != 0 {
		t.Errorf("CleanupStale: %d cleaned, %v; want 0, nil", n, err)
	}
	wantCode(t, p.unpublishAt("pv-x", sub), codes.FailedPrecondition)
	if mountCount(t, sub) != 1 {
		t.Errorf("kubelet's subPath bind mount was unmounted")
	}
}

// Publish never mounts over a folder with files it did not put there (it
// would hide them: here the whole pods tree): FailedPrecondition naming
// the path, the folder as it was.
func TestPublishOverNonEmptyFolderRefused(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	mountns.Require(t)
	p := startPlugin(t)
	p.writeSecret("default", "s", map[string]string{"k": "v"})
	pods := filepath.Join(p.dir, "pods")
	other := filepath.Join(pods, "other-pod", "volumes", "precious")
	must(t, os.MkdirAll(filepath.Dir(other), 0o750))
	must(t, os.WriteFile(other, []byte("keep me"), 0o600))
	req := p.hostileReq("over", pods)
	before := snap(t, pods)
	err := p.publish(req)
	wantRefused(t, err, codes.FailedPrecondition, pods, before)
	if b, err := os.ReadFile(other); err != nil || string(b) != "keep me" {
		t.Errorf("%s after the refused publish: %q, %v", other, b, err)
	}
}

// TestResumeLeavesForeignRecords: a keeper record is trusted no more than
// a request. A csi record whose target lies outside --mount-root (a
// mount root changed, or a record some other process registered) is left
// held and its target untouched: the restart never unmounts it.
func TestResumeLeavesForeignRecords(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	mountns.Require(t)
	base := t.TempDir()
	root := filepath.Join(base, "kubelet")
	must(t, os.MkdirAll(root, 0o750))
	outside := filepath.Join(base, "home", "user", "secrets")
	mountTmpfs(t, outside)
	must(t, os.WriteFile(filepath.Join(outside, "precious"), []byte("keep me"), 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(base, "keeper.sock")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	go keeper.New(quiet).Serve(ctx, sock)
	other := keeper.NewLink(sock, keeper.KindCSI, quiet)
	go other.Run(ctx)
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY, 0)
	must(t, err)
	meta, _ := json.Marshal(kept{VolumeID: "v"})
	j, err := other.Journal(outside, meta, nil)
	must(t, err)
	_, err = j.Attach(fd)(fusefs.Snapshot{})
	must(t, err)
	syscall.Close(fd)
	for deadline := time.Now().Add(5 * time.Second); other.Unprotected() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the record was not registered")
		}
	}

	kc := keeper.NewLink(sock, keeper.KindCSI, quiet)
	go kc.Run(ctx)
	d, err := New(Config{NodeID: "n", MountRoot: root, Keeper: kc, Logger: quiet})
	must(t, err)
	if n, err := d.Resume(ctx); err != nil || n != 0 {
		t.Fatalf("Resume = %d, %v; want 0, nil", n, err)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "precious")); err != nil || string(b) != "keep me" {
		t.Fatalf("Resume touched a mount outside --mount-root: %q %v", b, err)
	}
	entries, err := kc.List(ctx, 5*time.Second)
	must(t, err)
	for _, e := range entries {
		e.Close()
	}
	if len(entries) != 1 || entries[0].ID != outside {
		t.Fatalf("the refused record should stay held; keeper lists %d records", len(entries))
	}
}
