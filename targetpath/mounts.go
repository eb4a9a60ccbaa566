package targetpath

import (
	"fmt"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// inside returns the mount point of a mount of g.fsType that real lies
// strictly inside, or "".
func (g *Guard) inside(real string) (string, error) {
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter(g.fsType))
	if err != nil {
		return "", fmt.Errorf("read mounts: %w", err)
	}
	for _, mi := range infos {
		if mi.Mountpoint == "/" || strings.HasPrefix(real, mi.Mountpoint+"/") {
			return mi.Mountpoint, nil
		}
	}
	return "", nil
}

// Mount returns the topmost mount at exactly p (the last one mountinfo
// lists there: a mount stacked over another is listed after it), or nil
// if p is not a mount point.
func (p Path) Mount() (*mountinfo.Info, error) {
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
