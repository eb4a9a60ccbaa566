//go:build !linux

package envdir

import (
	"context"
	"fmt"

	"github.com/fsnotify/fsnotify"
)

// watch hints at every event in the folder (kqueue, ReadDirectoryChangesW:
// a renamed `..data` shows as a create). No link-only watch is possible
// here; the poll covers the rest.
func watch(ctx context.Context, dir string, hint chan<- struct{}) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				send(hint)
			case <-w.Errors:
			}
		}
	}()
	return nil
}
