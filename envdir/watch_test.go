package envdir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/secretfs/secretfs/sanity/atomicwriter"
)

// waitHint fails t unless a hint comes within a generous bound (events
// arrive in milliseconds; the bound is for a loaded machine).
func waitHint(t *testing.T, hint <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-hint:
	case <-time.After(20 * time.Second):
		t.Fatalf("no hint after %s", what)
	}
}

// noPoll turns the poll off for a test: only events may hint.
func noPoll(t *testing.T) {
	old := PollInterval
	PollInterval = time.Hour
	t.Cleanup(func() { PollInterval = old })
}

// switches drives kubelet's writer through n versions of dir and wants a
// hint after each, and Read to give the new value.
func switches(t *testing.T, dir string, n int) {
	if err := atomicwriter.Write(dir, map[string][]byte{"V": []byte("0")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hint := make(chan struct{}, 1)
	if err := Watch(ctx, dir, hint); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		drainHints(hint)
		if err := atomicwriter.Write(dir, map[string][]byte{"V": fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
		waitHint(t, hint, fmt.Sprintf("switch %d", i))
		v, err := Read(dir)
		if err != nil || len(v.Vars) != 1 || string(v.Vars[0].Value) != fmt.Sprint(i) {
			t.Fatalf("after switch %d read %q, %v", i, names(v), err)
		}
	}
}

func drainHints(hint chan struct{}) {
	for {
		select {
		case <-hint:
		default:
			return
		}
	}
}

// kubelet's switch (a rename over ..data) is seen by the watch alone.
func TestWatchAtomicWriter(t *testing.T) {
	noPoll(t)
	switches(t, t.TempDir(), 5)
}

// Without events (the poll is the fallback), a switch is still seen.
func TestWatchPollFallback(t *testing.T) {
	old := PollInterval
	PollInterval = 20 * time.Millisecond
	t.Cleanup(func() { PollInterval = old })
	dir := t.TempDir()
	if err := atomicwriter.Write(dir, map[string][]byte{"V": []byte("0")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hint := make(chan struct{}, 1)
	last, err := os.Readlink(filepath.Join(dir, DataLink))
	if err != nil {
		t.Fatal(err)
	}
	go poll(ctx, dir, last, hint) // the poll alone, no watch
	if err := atomicwriter.Write(dir, map[string][]byte{"V": []byte("1")}); err != nil {
		t.Fatal(err)
	}
	waitHint(t, hint, "a switch seen by the poll only")
}
