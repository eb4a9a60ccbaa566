package fusefs

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// MaxWrite bounds request buffers. Nothing is written to this filesystem,
// and a small value keeps every mount's buffers small; reads are still
// served from the page cache after the first one.
const MaxWrite = 64 * 1024

// Mount serves the filesystem at dir (which must exist) until it is
// unmounted. It returns once the kernel has answered INIT.
func (fs *FS) Mount(dir string) error {
	opts := &fuse.MountOptions{
		AllowOther:           os.Geteuid() == 0, // other users (containers) read it; fusermount needs user_allow_other
		Options:              []string{"default_permissions"},
		FsName:               fs.opts.Name,
		Name:                 "secretfs",
		DirectMount:          true,
		DirectMountFlags:     syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV,
		DisableXAttrs:        true,
		DisableReadDirPlus:   true,
		EnableSymlinkCaching: true,
		MaxWrite:             MaxWrite,
		MaxBackground:        16,
	}
	server, err := fuse.NewServer(fs, dir, opts)
	if err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	fs.mu.Lock()
	fs.server, fs.dir = server, dir
	fs.mu.Unlock()
	go func() {
		server.Serve()
		fs.wipeAll()
		close(fs.done)
	}()
	if err := server.WaitMount(); err != nil {
		_ = server.Unmount()
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	return nil
}

// Done is closed when the mount is gone (unmounted by us or from outside)
// and every byte of it has been wiped.
func (fs *FS) Done() <-chan struct{} { return fs.done }

// Unmount detaches the filesystem. A busy mount is detached lazily: it
// disappears from the tree at once and the kernel ends the session, and
// with it the data, when the last open file is closed.
func (fs *FS) Unmount() error {
	fs.mu.RLock()
	server, dir := fs.server, fs.dir
	fs.mu.RUnlock()
	if server == nil {
		return nil
	}
	err := syscall.Unmount(dir, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
		err = nil // not mounted any more
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}
