package csi

import (
	"errors"
	"fmt"
	"sort"
)

// CleanupStale removes the dead mounts of ours under the mount root that
// an earlier process left (their server is gone: Mounter.Dead),
// by the rules of target.go: our type and source, a path the guard
// accepts, dead. Live ones are kept: another process (a keeper) serves
// them. kubelet republishes the volumes (requiresRepublish) into fresh
// mounts. Mounts this process serves are never looked at: a server must
// not wait on its own mounts.
func (d *Driver) CleanupStale() (cleaned int, err error) {
	infos, err := d.mounter.Below(d.guard, fsType)
	if err != nil {
		return 0, err
	}
	var dead []string
	for _, mi := range infos {
		if !isOurs(mi) || d.Serves(mi.Mountpoint) {
			continue
		}
		p, err := d.guard.Check(mi.Mountpoint)
		if err != nil {
			// Nested in another secretfs mount, or a link on the
			// way: not a path we may touch.
			d.log.Warn("left a secretfs mount the target rules refuse", "err", err)
			continue
		}
		// umount(2) takes the topmost mount: clean only if that is the
		// one listed here.
		if top, err := d.mounter.At(p); err != nil || top == nil || top.ID != mi.ID {
			continue
		}
		if !d.mounter.Dead(p.Name) {
			continue
		}
		if _, _, ok := kubeletTarget(p.Name); ok {
			// kubelet republishes it (a fresh mount goes on top, which
			// a HostToContainer container sees: prepareTarget) or
			// unpublishes it (clearDead).
			d.log.Info("left a dead mount of an earlier process for kubelet to republish over or unpublish", "target", p.Name)
			continue
		}
		dead = append(dead, p.Name)
	}
	// Deepest first, should one ever be nested in another.
	sort.Slice(dead, func(i, j int) bool { return len(dead[i]) > len(dead[j]) })
	var errs []error
	for _, mp := range dead {
		if err := d.mounter.Unmount(mp); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := removeEmptyDir(mp); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", mp, err))
		}
		cleaned++
		d.log.Info("cleaned a stale mount of an earlier process", "target", mp)
	}
	return cleaned, errors.Join(errs...)
}
