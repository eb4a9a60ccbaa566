package csi

import (
	"errors"
	"fmt"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	mountutils "k8s.io/mount-utils"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/targetpath"
)

// Mounter is what the target rules (target.go, stale.go) ask of the
// kernel: what is mounted at a target, whether its server is gone, and
// the one unmount the plugin does itself (of a mount already known to be
// ours and dead). The rules decide; a Mounter only answers. The default
// is hostMounter; tests give a fake, so the rules run without root.
//
// mount-utils' mount.Interface does not fit: its MountPoint has no mount
// id (which tells our mount from one stacked over it since) nor root
// (which tells our volume from kubelet's subPath bind of it), and its
// Unmount runs umount(8), which follows links.
type Mounter interface {
	// At returns the topmost mount at exactly p, or nil if p is not a
	// mount point.
	At(p targetpath.Path) (*mountinfo.Info, error)
	// TopID is the id of the topmost mount p is on (mountinfo's first
	// field; the mount p lies in when p is not a mount point), 0 if the
	// kernel does not say.
	TopID(p targetpath.Path) (uint64, error)
	// Below lists the mounts of fsType strictly below g's root.
	Below(g *targetpath.Guard, fsType string) ([]*mountinfo.Info, error)
	// Dead says the mount at path has lost its server.
	Dead(path string) bool
	// Unmount unmounts the topmost mount at path, lazily if busy, never
	// following a link in path. Not mounted any more is no error.
	Unmount(path string) error
	// Statfs reports the filesystem of the mount at path.
	Statfs(path string) (unix.Statfs_t, error)
}

// hostMounter is the Mounter of the host: the mount table as package
// targetpath reads it (the only reader of /proc/self/mountinfo), statfs
// and umount2.
type hostMounter struct{}

func (hostMounter) At(p targetpath.Path) (*mountinfo.Info, error) { return p.Mount() }

func (hostMounter) TopID(p targetpath.Path) (uint64, error) { return p.MountID() }

func (hostMounter) Below(g *targetpath.Guard, fsType string) ([]*mountinfo.Info, error) {
	return g.Mounts(fsType)
}

// Dead asks with statfs(2), which the kernel always sends to the server:
// lstat is answered from the attribute cache even on a connection that
// is gone, so a dead mount whose root attributes are cached looked alive
// (and kubelet's republish over it was refused for minutes). A mount
// whose server is only absent (a keeper holds it, nobody serves it yet)
// makes statfs wait, so the probe gives up after deadProbeTimeout and
// calls it alive: only a connection the kernel has aborted answers
// ENOTCONN at once. A probe that gave up leaves its goroutine waiting
// until the mount is served or dies.
func (hostMounter) Dead(path string) bool {
	done := make(chan error, 1)
	go func() {
		var st unix.Statfs_t
		done <- unix.Statfs(path, &st)
	}()
	select {
	case err := <-done:
		return err != nil && mountutils.IsCorruptedMnt(err)
	case <-time.After(deadProbeTimeout):
		return false
	}
}

// deadProbeTimeout bounds Dead's wait on a mount nobody serves.
const deadProbeTimeout = time.Second

func (hostMounter) Unmount(path string) error {
	if err := fusefs.UnmountDir(path); err != nil {
		return fmt.Errorf("unmount %s: %w", path, errnoOf(errors.Unwrap(err)))
	}
	return nil
}

func (hostMounter) Statfs(path string) (unix.Statfs_t, error) {
	var st unix.Statfs_t
	err := unix.Statfs(path, &st)
	return st, errnoOf(err)
}
