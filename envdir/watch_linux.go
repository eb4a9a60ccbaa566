package envdir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const (
	// The folder: a new `..data` renamed in (kubelet's tmpfs) or made.
	dirEvents = unix.IN_MOVED_TO | unix.IN_CREATE | unix.IN_ONLYDIR
	// The `..data` link itself, not what it points to: on secretfs it is
	// deleted (FUSE_NOTIFY_DELETE) at the switch; on tmpfs it is
	// replaced by the rename.
	linkEvents = unix.IN_DONT_FOLLOW | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ATTRIB
)

// watch hints at every event of the folder's `..data` and of the link,
// and watches the new link after each: a switch makes another inode.
func watch(ctx context.Context, dir string, hint chan<- struct{}) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: reads wait in the poller, Close ends them
	if _, err := unix.InotifyAddWatch(fd, dir, dirEvents); err != nil {
		f.Close()
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	link := filepath.Join(dir, DataLink)
	unix.InotifyAddWatch(fd, link, linkEvents) // absent in a plain folder: the poll covers it
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return fmt.Errorf("inotify: %w", err)
	}
	go func() {
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			if _, err := f.Read(buf); err != nil {
				return // closed: ctx is done
			}
			// Every event here is about ..data or the folder: which one
			// does not matter, the caller reads and compares. Control
			// keeps the descriptor open meanwhile.
			raw.Control(func(fd uintptr) { unix.InotifyAddWatch(int(fd), link, linkEvents) })
			send(hint)
		}
	}()
	return nil
}
