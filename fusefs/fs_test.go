package fusefs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/sanity/needroot"
	"github.com/secretfs/secretfs/secmem"
)

func payload(files map[string]string, mode uint32) *projection.Payload {
	p := &projection.Payload{Files: map[string]projection.File{}}
	for k, v := range files {
		p.Files[k] = projection.File{Mode: mode, Data: []byte(v)}
	}
	return p
}

// mount mounts p on a fresh folder and unmounts at the end of the test.
func mount(t *testing.T, opts Options, p *projection.Payload) (*FS, string) {
	t.Helper()
	needroot.FUSE(t, "mount FUSE")
	dir := t.TempDir()
	// t.TempDir is 0700: let other users reach the mount, as they would
	// reach a Pod's volume.
	for d := dir; d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	fs, err := New(opts, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Mount(dir); err != nil {
		t.Fatal(err)
	}
	dev := mountDev(t, dir)
	t.Cleanup(func() {
		if err := fs.Unmount(); err != nil {
			t.Error(err)
		}
		waitStopped(t, fs, dev)
	})
	return fs, dir
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLayoutAsKubelet(t *testing.T) {
	fs, dir := mount(t, Options{}, payload(map[string]string{
		"username": "admin", "password": "1f2d1e2e67df",
		"my-group/my-username": "nested", ".secret-file": "dot",
	}, 0o644))
	names := func() []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	v := fs.cur.name
	want := []string{v, "..data", ".secret-file", "my-group", "password", "username"}
	slices.Sort(want)
	if got := names(); !slices.Equal(got, want) {
		t.Fatalf("root lists %q, want %q", got, want)
	}
	for link, target := range map[string]string{
		"..data": v, "username": "..data/username", "my-group": "..data/my-group", ".secret-file": "..data/.secret-file",
	} {
		if got, err := os.Readlink(filepath.Join(dir, link)); err != nil || got != target {
			t.Errorf("readlink %s = %q, %v; want %q", link, got, err, target)
		}
	}
	for path, want := range map[string]string{
		"username": "admin", "password": "1f2d1e2e67df", "my-group/my-username": "nested", ".secret-file": "dot",
	} {
		if got := read(t, filepath.Join(dir, path)); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	checkStat(t, dir, "", os.ModeDir|os.ModeSticky|0o777, 0)
	checkStat(t, dir, v, os.ModeDir|0o755, 0)
	checkStat(t, dir, "username", 0o644, 0)
	checkStat(t, dir, "my-group", os.ModeDir|0o755, 0)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("statfs = %+v, %v; want a read-only mount", st, err)
	}
}

func checkStat(t *testing.T, dir, name string, mode os.FileMode, gid uint32) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || st.Gid != gid || st.Uid != 0 {
		t.Errorf("stat %q = %v %d:%d, want %v 0:%d", name, fi.Mode(), st.Uid, st.Gid, mode, gid)
	}
}

func TestFSGroup(t *testing.T) {
	g := int64(1001)
	_, dir := mount(t, Options{FSGroup: &g}, payload(map[string]string{"password": "x", "a/b": "y"}, 0o400|0o440))
	checkStat(t, dir, "", os.ModeDir|os.ModeSticky|os.ModeSetgid|0o777, 1001)
	checkStat(t, dir, "..data", os.ModeDir|os.ModeSetgid|0o755, 1001)
	checkStat(t, dir, "password", 0o440, 1001)
	checkStat(t, dir, "a", os.ModeDir|os.ModeSetgid|0o755, 1001)
	fi, err := os.Lstat(filepath.Join(dir, "password"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Gid != 1001 || fi.Mode() != os.ModeSymlink|0o777 {
		t.Errorf("lstat password = %v, %v; want a link in group 1001", fi, err)
	}
}

// asUser runs cat as another user, as a Pod's container would read.
func asUser(uid, gid uint32, groups []uint32, path string) error {
	cmd := exec.Command("/bin/cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return errors.New(strings.TrimSpace(string(out)))
	}
	return nil
}

func TestPermissionsForOtherUsers(t *testing.T) {
	_, dir := mount(t, Options{AllowOther: true}, payload(map[string]string{"private": "x"}, 0o400))
	if err := asUser(65534, 65534, nil, filepath.Join(dir, "private")); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Errorf("uid 65534 reading a 0400 root file: %v, want permission denied", err)
	}
	g := int64(1001)
	_, dir = mount(t, Options{FSGroup: &g}, payload(map[string]string{"private": "x"}, 0o400|0o440))
	if err := asUser(65534, 65534, []uint32{1001}, filepath.Join(dir, "private")); err != nil {
		t.Errorf("member of fsGroup reading 0440: %v", err)
	}
	if err := asUser(65534, 65534, nil, filepath.Join(dir, "private")); err == nil {
		t.Error("non-member read a 0440 file")
	}
}

func TestReadOnly(t *testing.T) {
	_, dir := mount(t, Options{}, payload(map[string]string{"k": "v"}, 0o644))
	k := filepath.Join(dir, "k")
	checks := map[string]error{
		"write":     os.WriteFile(k, []byte("x"), 0o644),
		"create":    os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644),
		"unlink":    os.Remove(k),
		"rename":    os.Rename(k, filepath.Join(dir, "k2")),
		"chmod":     os.Chmod(k, 0o600),
		"chown":     os.Chown(k, 1, 1),
		"mkdir":     os.Mkdir(filepath.Join(dir, "d"), 0o755),
		"symlink":   os.Symlink("k", filepath.Join(dir, "l")),
		"setxattr":  syscall.Setxattr(k, "user.x", []byte("1"), 0),
		"truncate":  os.Truncate(k, 0),
		"rmversion": os.RemoveAll(filepath.Join(dir, "..data") + "/"),
	}
	for op, err := range checks {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", op, err)
		}
	}
	if got := read(t, k); got != "v" {
		t.Errorf("after the attempts k = %q", got)
	}
}

func TestUpdateSwitchesAndKeepsOpenFiles(t *testing.T) {
	fs, dir := mount(t, Options{Grace: 50 * time.Millisecond}, payload(map[string]string{"a": "old-a", "gone": "x"}, 0o644))
	f, err := os.Open(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := fs.cur
	blocks, _, _ := secmem.Stats()
	if err := fs.Update(payload(map[string]string{"a": "new-a", "added": "y"}, 0o644)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "a")); got != "new-a" {
		t.Errorf("a after update = %q", got)
	}
	if got := read(t, filepath.Join(dir, "added")); got != "y" {
		t.Errorf("added = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed key still there: %v", err)
	}
	buf := make([]byte, 16)
	n, err := f.ReadAt(buf, 0)
	if string(buf[:n]) != "old-a" {
		t.Errorf("file opened before the switch reads %q, %v; want old-a", buf[:n], err)
	}
	// The old version is released (and wiped) only after the file closes.
	time.Sleep(100 * time.Millisecond)
	if fs.hasVersion(first.gen) == false {
		t.Fatal("old version dropped while a file of it is open")
	}
	f.Close()
	deadline := time.Now().Add(5 * time.Second)
	for fs.hasVersion(first.gen) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if fs.hasVersion(first.gen) {
		t.Fatal("old version never released after its last file closed")
	}
	// Its block was the only holder of "old-a" and "x": zeroed and
	// unmapped, while the new version's block is held.
	if now, _, _ := secmem.Stats(); now != blocks {
		t.Errorf("released version still holds its bytes (blocks %d, want %d)", now, blocks)
	}
}

func (fs *FS) hasVersion(gen uint64) bool {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	_, ok := fs.versions[gen]
	return ok
}

func TestUnmountFromOutside(t *testing.T) {
	needroot.FUSE(t, "mount FUSE")
	dir := t.TempDir()
	fs, err := New(Options{}, payload(map[string]string{"k": "v"}, 0o644))
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Mount(dir); err != nil {
		t.Fatal(err)
	}
	dev := mountDev(t, dir)
	if err := exec.Command("umount", dir).Run(); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, fs, dev)
}

// TestNoNoticeAfterUnmount: a grace timer firing after the mount is gone
// must not write a notification to whatever file reuses the descriptor
// number, and no version may be added once the session ended.
func TestNoNoticeAfterUnmount(t *testing.T) {
	needroot.FUSE(t, "mount FUSE")
	dir := t.TempDir()
	fs, err := New(Options{Grace: 100 * time.Millisecond}, payload(map[string]string{"k": "1"}, 0o644))
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Mount(dir); err != nil {
		t.Fatal(err)
	}
	dev := mountDev(t, dir)
	if err := fs.Update(payload(map[string]string{"k": "2"}, 0o644)); err != nil {
		t.Fatal(err)
	}
	if err := fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, fs, dev)
	var files []*os.File // likely to get the old descriptor number
	for range 4 {
		f, err := os.CreateTemp(t.TempDir(), "reuse")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	time.Sleep(300 * time.Millisecond) // past the grace of the old version
	for _, f := range files {
		if fi, _ := f.Stat(); fi.Size() != 0 {
			t.Errorf("%d bytes written to %s after the unmount", fi.Size(), f.Name())
		}
	}
	if err := fs.Update(payload(map[string]string{"k": "3"}, 0o644)); !errors.Is(err, ErrUnmounted) {
		t.Errorf("Update after the unmount: %v, want ErrUnmounted", err)
	}
}
