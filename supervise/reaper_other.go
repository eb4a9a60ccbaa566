//go:build unix && !linux

package supervise

import "os"

// becomeReaper does nothing: macOS and the BSDs have no subreaper, so
// orphans of the command go to launchd or init, which reap them.
func becomeReaper() {}

// orphans has nothing to reap here (see becomeReaper).
type orphans struct{}

func (orphans) reap(chan os.Signal, func(int) bool) {}
