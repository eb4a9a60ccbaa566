package csi

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/moby/sys/mountinfo"
	mountutils "k8s.io/mount-utils"
)

// unmountFS is mount-utils' mounter with Unmount done by umount(2) rather
// than the umount binary: the plugin's image needs no util-linux, and a
// busy mount is detached lazily (the data goes when the last file closes).
type unmountFS struct{ mountutils.Interface }

func (unmountFS) Unmount(target string) error {
	err := syscall.Unmount(target, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(target, syscall.MNT_DETACH)
	}
	if errors.Is(err, syscall.EINVAL) {
		return nil // not a mount point (any more)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// CanSafelySkipMountPointCheck is false: our Unmount is not the binary
// whose behaviour mount-utils probed.
func (unmountFS) CanSafelySkipMountPointCheck() bool { return false }

var unmounter = sync.OnceValue(func() mountutils.Interface {
	return unmountFS{mountutils.NewWithoutSystemd("")}
})

// CleanupStale removes the dead secretfs mounts under root that an earlier
// process left (their server is gone: stat says ENOTCONN). Live ones are
// kept: another process (a keeper, a `secretfs mount`) serves them.
// kubelet republishes the volumes (requiresRepublish) into fresh mounts.
// Mounts this process serves (skip) are never looked at: a server must
// not wait on its own mounts.
func CleanupStale(root string, log *slog.Logger, skip func(target string) bool) (cleaned int, err error) {
	if root == "" {
		return 0, nil
	}
	if log == nil {
		log = slog.Default()
	}
	root = filepath.Clean(root)
	// moby's parser undoes mountinfo's octal escapes (\040 for a space).
	infos, err := mountinfo.GetMounts(func(mi *mountinfo.Info) (skip, stop bool) {
		return mi.FSType != "fuse."+fsName && mi.Source != fsName, false
	})
	if err != nil {
		return 0, fmt.Errorf("read mounts: %w", err)
	}
	var dead []string
	for _, mi := range infos {
		mp := mi.Mountpoint
		if mp != root && !strings.HasPrefix(mp, root+"/") || skip != nil && skip(mp) {
			continue
		}
		if _, err := os.Stat(mp); err == nil || !mountutils.IsCorruptedMnt(err) {
			continue
		}
		dead = append(dead, mp)
	}
	// Deepest first, should one ever be nested in another.
	sort.Slice(dead, func(i, j int) bool { return len(dead[i]) > len(dead[j]) })
	var errs []error
	for _, mp := range dead {
		if err := mountutils.CleanupMountPoint(mp, unmounter(), false); err != nil {
			errs = append(errs, err)
			continue
		}
		cleaned++
		log.Info("cleaned a stale mount of an earlier process", "target", mp)
	}
	return cleaned, errors.Join(errs...)
}
