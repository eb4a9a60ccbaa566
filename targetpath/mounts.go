package targetpath

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// inside returns the mount point of the mount of g.fsType that p lies
// strictly inside, or "". dir is p's deepest existing folder (walk's).
// p is inside a mount only if dir is on that mount's filesystem, so a
// statfs of dir that is not FUSE (for a FUSE type) answers without reading the mount table
// (which costs milliseconds per call on a node with a thousand mounts).
func (g *Guard) inside(p Path, dir string) (string, error) {
	if strings.HasPrefix(g.fsType, "fuse.") {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err == nil && st.Type != unix.FUSE_SUPER_MAGIC {
			return "", nil
		}
	}
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter(g.fsType))
	if err != nil {
		return "", fmt.Errorf("read mounts: %w", err)
	}
	for _, mi := range infos {
		if mi.Mountpoint == "/" || strings.HasPrefix(p.Real, mi.Mountpoint+"/") {
			return mi.Mountpoint, nil
		}
	}
	return "", nil
}

// Mount returns the topmost mount at exactly p (the last one mountinfo
// lists there: a mount stacked over another is listed after it), or nil
// if p is not a mount point.
func (p Path) Mount() (*mountinfo.Info, error) {
	// statx knows whether p is a mount's root: most targets are not, and
	// need no read of the mount table.
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, p.Name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE, &stx)
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		return nil, nil
	case err == nil && stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0:
		return nil, nil
	}
	infos, err := mountinfo.GetMounts(func(mi *mountinfo.Info) (skip, stop bool) {
		return mi.Mountpoint != p.Real, false
	})
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	if len(infos) == 0 {
		return nil, nil
	}
	return infos[len(infos)-1], nil
}

// MountID is the id of the topmost mount p is on (mountinfo's first
// field), 0 if the kernel does not say. A caller that noted the id of
// the mount it made can tell later, without reading the mount table,
// whether that mount is still the one at p.
func (p Path) MountID() (uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p.Name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, err
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, nil
	}
	return stx.Mnt_id, nil
}

// Mounts lists the mounts of fsType strictly below the root, by their
// mountinfo name (for the scan of stale mounts at start).
func (g *Guard) Mounts(fsType string) ([]*mountinfo.Info, error) {
	infos, err := mountinfo.GetMounts(func(mi *mountinfo.Info) (skip, stop bool) {
		return mi.FSType != fsType || !strings.HasPrefix(mi.Mountpoint, g.real+"/"), false
	})
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	return infos, nil
}
