package fusefs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/sanity/mountns"
)

var subPath = Options{SubPathUpdates: true, Grace: 50 * time.Millisecond}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func update(t *testing.T, fs *FS, files map[string]string) {
	t.Helper()
	if err := fs.Update(payload(files, 0o644)); err != nil {
		t.Fatal(err)
	}
}

// TestSubPathLayout: the top-level names are a file and a folder, not
// links; ..data and the version folder stay as kubelet lays them out.
func TestSubPathLayout(t *testing.T) {
	fs, dir := mount(t, subPath, payload(map[string]string{"username": "admin", "my-group/my-username": "nested"}, 0o644))
	for name, mode := range map[string]os.FileMode{"username": 0o644, "my-group": os.ModeDir | 0o755, "..data": os.ModeSymlink | 0o777} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || fi.Mode() != mode {
			t.Errorf("lstat %s = %v, %v; want %v", name, fi, err, mode)
		}
	}
	if got, err := os.Readlink(filepath.Join(dir, "..data")); err != nil || got != fs.cur.name {
		t.Errorf("..data -> %q, %v; want %q", got, err, fs.cur.name)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]os.FileMode{}
	for _, e := range ents {
		types[e.Name()] = e.Type()
	}
	if types["username"] != 0 || types["my-group"] != os.ModeDir || types["..data"] != os.ModeSymlink || len(types) != 4 {
		t.Errorf("root lists %v", types)
	}
	if got := read(t, filepath.Join(dir, "..data/my-group/my-username")); got != "nested" {
		t.Errorf("through ..data: %q", got)
	}
}

// TestSubPathStableInode: a top-level file, an item folder and the file in
// it keep their inode numbers across switches and show the current
// version; a file's mtime advances at each switch that changes it, and
// only then.
func TestSubPathStableInode(t *testing.T) {
	fs, dir := mount(t, subPath, payload(map[string]string{"username": "v0", "same": "x", "my-group/my-username": "n0"}, 0o644))
	paths := []string{"username", "same", "my-group", "my-group/my-username"}
	inos := map[string]uint64{}
	for _, p := range paths {
		inos[p] = ino(t, filepath.Join(dir, p))
	}
	mtime := func(p string) time.Time {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	last, same := mtime("username"), mtime("same")
	for n := 1; n <= 5; n++ {
		update(t, fs, map[string]string{"username": fmt.Sprintf("v%d", n), "same": "x", "my-group/my-username": fmt.Sprintf("n%d", n)})
		for _, p := range paths {
			if got := ino(t, filepath.Join(dir, p)); got != inos[p] {
				t.Errorf("switch %d: %s has inode %d, was %d", n, p, got, inos[p])
			}
		}
		if got := read(t, filepath.Join(dir, "username")); got != fmt.Sprintf("v%d", n) {
			t.Errorf("switch %d: username = %q", n, got)
		}
		if got := read(t, filepath.Join(dir, "my-group/my-username")); got != fmt.Sprintf("n%d", n) {
			t.Errorf("switch %d: my-group/my-username = %q", n, got)
		}
		if m := mtime("username"); !m.After(last) {
			t.Errorf("switch %d: username's mtime %v did not advance from %v", n, m, last)
		} else {
			last = m
		}
		if m := mtime("same"); !m.Equal(same) {
			t.Errorf("switch %d: an unchanged file's mtime moved from %v to %v", n, same, m)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "username"), &st); err != nil || st.Size != 2 || st.Nlink != 1 {
		t.Errorf("stat username: size %d nlink %d, %v", st.Size, st.Nlink, err)
	}
}

// TestSubPathNoTornReads: whole-file reads (open, read to EOF, in one
// read or in 4 KiB pieces) of a 96 KiB value during 40 switches each return
// one version's bytes, never a mix and never an error. Versions alternate
// in length, so a read that mixes them shows as a wrong length too.
func TestSubPathNoTornReads(t *testing.T) {
	const size = 96 << 10
	length := func(c byte) int { return size - int(c-'a')%2*1000 }
	value := func(n int) string {
		c := byte('a' + n%26)
		return string(bytes.Repeat([]byte{c}, length(c)))
	}
	fs, dir := mount(t, subPath, payload(map[string]string{"big": value(0)}, 0o644))
	var stop atomic.Bool
	var reads, torn atomic.Int64
	var wg sync.WaitGroup
	readers := []func() ([]byte, error){
		func() ([]byte, error) { return os.ReadFile(filepath.Join(dir, "big")) },
		func() ([]byte, error) { return readPieces(filepath.Join(dir, "big"), 4096) },
		func() ([]byte, error) { return readPieces(filepath.Join(dir, "big"), 40000) },
	}
	for _, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				b, err := r()
				switch {
				case err != nil:
					torn.Add(1)
					t.Errorf("read: %v", err)
				case len(b) == 0 || len(b) != length(b[0]) || bytes.Count(b, b[:1]) != len(b):
					torn.Add(1)
					t.Errorf("a read of %d bytes mixes versions", len(b))
				}
				reads.Add(1)
			}
		}()
	}
	for n := 1; n <= 40; n++ {
		update(t, fs, map[string]string{"big": value(n)})
		time.Sleep(2 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if torn.Load() > 0 {
		t.Errorf("%d of %d whole-file reads failed or mixed versions", torn.Load(), reads.Load())
	}
	if got := read(t, filepath.Join(dir, "big")); got != value(40) {
		t.Errorf("after the last switch big holds %d bytes of %q", len(got), got[:1])
	}
	t.Logf("%d whole-file reads of 96 KiB across 40 switches, %d torn", reads.Load(), torn.Load())
}

// readPieces opens p and reads it to EOF, piece bytes per read(2).
func readPieces(p string, piece int) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []byte
	buf := make([]byte, piece)
	for {
		n, err := f.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		time.Sleep(50 * time.Microsecond) // let switches land mid-file
	}
}

// TestSubPathOpenKeepsVersion: a file opened before a switch reads the
// version it opened to the end, and its version's bytes stay until it is
// closed; a new open reads the new version.
func TestSubPathOpenKeepsVersion(t *testing.T) {
	fs, dir := mount(t, subPath, payload(map[string]string{"k": "old-value"}, 0o644))
	f, err := os.Open(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := f.Read(head); err != nil || string(head) != "old-" {
		t.Fatalf("first read %q, %v", head, err)
	}
	first := fs.cur.gen
	update(t, fs, map[string]string{"k": "new-value-longer"})
	update(t, fs, map[string]string{"k": "newest"})
	time.Sleep(3 * subPath.Grace) // past the grace of both
	rest := make([]byte, 64)
	n, _ := f.Read(rest)
	if got := string(head) + string(rest[:n]); got != "old-value" {
		t.Errorf("the descriptor opened before the switches reads %q", got)
	}
	if got := read(t, filepath.Join(dir, "k")); got != "newest" {
		t.Errorf("a new open reads %q", got)
	}
	if !fs.hasVersion(first) {
		t.Error("the version of an open file was dropped")
	}
	f.Close()
	waitUntil(t, "the version of a closed file is dropped", func() bool { return !fs.hasVersion(first) })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
	}
}

// TestSubPathTypeChange: a key that turns from a file into a folder gets
// a new node ID; a descriptor of the file keeps its bytes.
func TestSubPathTypeChange(t *testing.T) {
	fs, dir := mount(t, subPath, payload(map[string]string{"a": "file", "b": "x"}, 0o644))
	before := ino(t, filepath.Join(dir, "a"))
	f, err := os.Open(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	update(t, fs, map[string]string{"a/inner": "nested", "b": "x"})
	fi, err := os.Lstat(filepath.Join(dir, "a"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("a after the change: %v, %v; want a folder", fi, err)
	}
	if after := ino(t, filepath.Join(dir, "a")); after == before {
		t.Errorf("a file and a folder share node ID %d", after)
	}
	if got := read(t, filepath.Join(dir, "a/inner")); got != "nested" {
		t.Errorf("a/inner = %q", got)
	}
	b := make([]byte, 16)
	if n, err := f.ReadAt(b, 0); string(b[:n]) != "file" {
		t.Errorf("the open file reads %q, %v", b[:n], err)
	}
	update(t, fs, map[string]string{"a": "file again", "b": "x"})
	if got := ino(t, filepath.Join(dir, "a")); got != before {
		t.Errorf("a file again: inode %d, want the file's %d", got, before)
	}
}

// TestSubPathBinds binds a top-level file and an item folder, as kubelet
// does for a container's subPath (only in a private mount namespace): the
// binds follow every switch; a removed key leaves the listing while its
// bind keeps the last bytes (an unlinked file), and follows again when the
// key returns; an added key appears.
func TestSubPathBinds(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	fs, dir, binds := mountBound(t, map[string]string{"username": "u0", "password": "p0", "my-group/my-username": "n0"}, "username", "my-group")
	file, folder := binds["username"], binds["my-group"]
	want := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %q, want %q", what, got, want)
		}
	}
	update(t, fs, map[string]string{"username": "u1", "password": "p1", "my-group/my-username": "n1"})
	kept := fs.cur.gen // the last version with username
	want("file bind after a switch", read(t, file), "u1")
	want("folder bind after a switch", read(t, filepath.Join(folder, "my-username")), "n1")

	update(t, fs, map[string]string{"password": "p2", "my-group/my-username": "n2", "added": "a2"})
	if _, err := os.Lstat(filepath.Join(dir, "username")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed key still in the volume: %v", err)
	}
	want("added key", read(t, filepath.Join(dir, "added")), "a2")
	want("bind of a removed key", read(t, file), "u1")
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil || st.Nlink != 0 {
		t.Errorf("bind of a removed key: nlink %d, %v; want 0 (unlinked)", st.Nlink, err)
	}
	want("folder bind", read(t, filepath.Join(folder, "my-username")), "n2")
	time.Sleep(3 * subPath.Grace) // the old versions' grace ends
	for n := 3; n <= 4; n++ {
		update(t, fs, map[string]string{"password": fmt.Sprintf("p%d", n)})
	}
	want("bind of a removed key after more switches", read(t, file), "u1")
	if !fs.hasVersion(kept) {
		t.Error("the version holding a removed key's last bytes was dropped while a bind holds it")
	}

	update(t, fs, map[string]string{"username": "u5", "my-group/my-username": "n5"})
	want("bind of a key that came back", read(t, file), "u5")
	want("folder bind of an item that came back", read(t, filepath.Join(folder, "my-username")), "n5")
	if err := unix.Stat(file, &st); err != nil || st.Nlink != 1 || st.Size != 2 {
		t.Errorf("bind of a key that came back: nlink %d size %d, %v", st.Nlink, st.Size, err)
	}
	waitUntil(t, "the version kept for a removed key goes once the key is back", func() bool { return !fs.hasVersion(kept) })
}

// mountBound mounts files with SubPathUpdates and binds each of names into
// a temporary folder, as kubelet binds a container's subPath (only in a
// private mount namespace); it returns the binds' paths by name.
func mountBound(t *testing.T, files map[string]string, names ...string) (*FS, string, map[string]string) {
	t.Helper()
	fs, dir := mount(t, subPath, payload(files, 0o644))
	work := t.TempDir()
	binds := map[string]string{}
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		binds[n] = filepath.Join(work, n)
		bind(t, filepath.Join(dir, n), binds[n], fi.IsDir())
	}
	return fs, dir, binds
}

func bind(t *testing.T, src, dst string, dir bool) {
	t.Helper()
	mountns.Require(t)
	var err error
	if dir {
		err = os.Mkdir(dst, 0o755)
	} else {
		err = os.WriteFile(dst, nil, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", src, err)
	}
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
}

// TestSubPathTakeover: a server that takes the mount over (Handover, then
// Restore from the snapshot and Serve on the same descriptor, as after a
// plugin restart) answers for the same node IDs: a bind made before keeps
// following, and the bytes of a removed key kept for a bind stay.
func TestSubPathTakeover(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	fs, dir, binds := mountBound(t, map[string]string{"username": "u0", "gone": "g0", "my-group/my-username": "n0"}, "username", "gone")
	file, gone := binds["username"], binds["gone"]
	update(t, fs, map[string]string{"username": "u1", "my-group/my-username": "n1"})
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	fs2 := takeOver(t, fs, dir)
	if got := read(t, file); got != "u1" {
		t.Errorf("bind after the takeover: %q", got)
	}
	if after, err := os.Stat(file); err != nil || !after.ModTime().Equal(fi.ModTime()) {
		t.Errorf("mtime after the takeover: %v, %v; was %v", after.ModTime(), err, fi.ModTime())
	}
	if got := read(t, gone); got != "g0" {
		t.Errorf("bind of a removed key after the takeover: %q", got)
	}
	update(t, fs2, map[string]string{"username": "u2", "gone": "g2", "my-group/my-username": "n2"})
	for p, want := range map[string]string{file: "u2", gone: "g2", filepath.Join(dir, "my-group/my-username"): "n2"} {
		if got := read(t, p); got != want {
			t.Errorf("%s after a switch by the new server: %q, want %q", p, got, want)
		}
	}
}

// takeOver hands the mount of fs at dir to a new FS built from its
// snapshot, on a dup of its descriptor (the keeper's part).
func takeOver(t *testing.T, fs *FS, dir string) *FS {
	t.Helper()
	fd, err := syscall.Dup(fs.FD())
	if err != nil {
		t.Fatal(err)
	}
	fs.mu.RLock()
	snap := fs.snapshot()
	fs.mu.RUnlock()
	fs2, err := Restore(Options{Grace: subPath.Grace}, snap)
	if err != nil {
		t.Fatal(err)
	}
	if !fs.Handover(5 * time.Second) {
		t.Fatal("the first server did not stop")
	}
	if err := fs2.Serve(fd, dir); err != nil {
		t.Fatal(err)
	}
	// The session ends once the binds made after the mount are gone
	// too; the first server's cleanup waits for none (it has stopped).
	t.Cleanup(func() { fs2.Unmount() })
	return fs2
}

// TestSubPathForgetReleases (no mount: the kernel's calls made directly):
// the version that keeps a removed key's bytes for a stable node the
// kernel holds goes once the kernel forgets that node; node IDs encode the
// type, and a restored server resolves them without any lookup.
func TestSubPathForgetReleases(t *testing.T) {
	fs, err := New(subPath, payload(map[string]string{"k": "old", "d/f": "x"}, 0o644))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.wipeAll()
	var out fuse.EntryOut
	if st := fs.Lookup(nil, &fuse.InHeader{NodeId: rootID}, "k", &out); st != fuse.OK {
		t.Fatalf("lookup k: %v", st)
	}
	id, kept := out.NodeId, fs.cur.gen
	if id != stableID("k", false) || id == stableID("k", true) {
		t.Fatalf("k has ID %#x; want the file ID %#x, not the folder's", id, stableID("k", false))
	}
	restored, err := Restore(Options{}, fs.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var attr fuse.AttrOut
	if st := restored.GetAttr(nil, &fuse.GetAttrIn{InHeader: fuse.InHeader{NodeId: stableID("d/f", false)}}, &attr); st != fuse.OK || attr.Size != 1 {
		t.Errorf("restored server: getattr of d/f: %v, size %d", st, attr.Size)
	}
	restored.wipeAll()
	update(t, fs, map[string]string{"d/f": "y"})
	waitUntil(t, "the old version hidden", func() bool { return fs.versionHidden(kept) })
	fs.maybeDrop(fs.version(kept))
	if !fs.hasVersion(kept) {
		t.Fatal("the version holding a removed key's bytes went while the kernel holds its node")
	}
	if st := fs.GetAttr(nil, &fuse.GetAttrIn{InHeader: fuse.InHeader{NodeId: id}}, &attr); st != fuse.OK || attr.Nlink != 0 || attr.Size != 3 {
		t.Errorf("getattr of the removed key: %v, nlink %d size %d; want 0 and its last 3 bytes", st, attr.Nlink, attr.Size)
	}
	fs.Forget(id, 1)
	if fs.hasVersion(kept) {
		t.Error("the version stayed after the kernel forgot the node that held it")
	}
}

func (fs *FS) version(gen uint64) *version {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	return fs.versions[gen]
}

func (fs *FS) versionHidden(gen uint64) bool {
	v := fs.version(gen)
	return v != nil && v.hidden.Load()
}
