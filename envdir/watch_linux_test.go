package envdir

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/sanity/mountns"
	"github.com/secretfs/secretfs/sanity/needroot"
)

// kubelet's own volume is a tmpfs: the same switches there.
func TestWatchTmpfs(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	noPoll(t)
	switches(t, dir, 5)
}

// On a secretfs volume the folder gets no events (FUSE has none): the
// watch on the ..data link itself (IN_DONT_FOLLOW) must see each switch
// at once, not when the old version's grace ends, with the poll off.
func TestWatchSecretfs(t *testing.T) {
	needroot.FUSE(t, "mounts a secretfs volume")
	payload := func(v string) *projection.Payload {
		return &projection.Payload{Files: map[string]projection.File{
			"V": {Mode: 0o644, Data: []byte(v)}, "tls.crt": {Mode: 0o644, Data: []byte("c")}}}
	}
	fs, err := fusefs.New(fusefs.Options{}, payload("0"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := fs.Mount(dir); err != nil {
		t.Fatal(err)
	}
	defer func() { fs.Unmount(); <-fs.Done() }()
	noPoll(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hint := make(chan struct{}, 1)
	if err := Watch(ctx, dir, hint); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		drainHints(hint)
		if err := fs.Update(payload(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		waitHint(t, hint, fmt.Sprintf("update %d", i))
		v, err := Read(dir)
		if err != nil || len(v.Vars) != 1 || string(v.Vars[0].Value) != fmt.Sprint(i) || len(v.Skipped) != 1 {
			t.Fatalf("after update %d read %q skipped %q, %v", i, names(v), v.Skipped, err)
		}
	}
}
