package envdir

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// PollInterval is how often Watch looks at `..data` whatever the events
// say: the fallback for a filesystem that gives none.
var PollInterval = 2 * time.Second

// Watch sends on hint (without blocking: a pending hint is enough) when
// dir may have switched to another version, until ctx is done. It
// returns an error only if dir cannot be watched at all; the poll still
// runs then.
func Watch(ctx context.Context, dir string, hint chan<- struct{}) error {
	last, _ := os.Readlink(filepath.Join(dir, DataLink)) // before returning: a switch after it is seen
	go poll(ctx, dir, last, hint)
	return watch(ctx, dir, hint)
}

// poll hints when `..data` points elsewhere than at the last look (first
// last), and at every look for a folder without `..data` (its files are
// compared).
func poll(ctx context.Context, dir, last string, hint chan<- struct{}) {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := os.Readlink(filepath.Join(dir, DataLink))
		if err != nil || now != last {
			send(hint)
		}
		last = now
	}
}

func send(hint chan<- struct{}) {
	select {
	case hint <- struct{}{}:
	default:
	}
}
