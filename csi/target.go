package csi

import (
	"errors"
	"io"
	"os"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mountutils "k8s.io/mount-utils"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/targetpath"
)

// This file decides what the plugin may do at a target. Every path first
// passes the guard (targetpath); then, with what the Mounter (mounter.go)
// answers of the mount table:
//
//   - a mount is ours if this process's bookkeeping holds it (its own
//     publishes and the mounts it took back from the keeper), or, for a
//     mount an earlier process left, if mountinfo shows our type and our
//     source marker (fsType, mountSource) and its server is gone
//     (Mounter.Dead: ENOTCONN). A live mount of an earlier process that we
//     did not take back is served by someone else: not ours to undo.
//   - only a mount of ours is unmounted: a live one by its volume
//     (Volume.Unmount), and only while the topmost mount at the target is
//     still it (Driver.onTop); a dead one by Mounter.Unmount
//     (UMOUNT_NOFOLLOW);
//   - only an empty folder is removed (rmdir, never unlink or RemoveAll),
//     and on a failed publish only the folder this publish created.

const (
	// fsType is how mountinfo shows a secretfs mount (fusefs sets the
	// subtype).
	fsType = "fuse.secretfs"
	// mountSource is the source (fsname) of the plugin's mounts. It tells
	// them from a workstation's `secretfs mount` (source "secretfs"), so
	// a dead mount is recognised as the plugin's after a restart.
	mountSource = "secretfs-csi"
)

// DefaultMountRoot is kubelet's default root-dir.
const DefaultMountRoot = "/var/lib/kubelet"

// checkPath runs the guard; its refusal is InvalidArgument naming the path.
func (d *Driver) checkPath(field, path string) (targetpath.Path, error) {
	if path == "" {
		return targetpath.Path{}, status.Errorf(codes.InvalidArgument, "%s is required", field)
	}
	p, err := d.guard.Check(path)
	if err != nil {
		return targetpath.Path{}, status.Errorf(codes.InvalidArgument, "%s: %v", field, err)
	}
	return p, nil
}

// isOurs says mi is a mount the plugin made: our type and source, and the
// root of the filesystem. kubelet's subPath bind mounts of a volume show
// the same type and source but another root (the file or folder bound):
// they are kubelet's to undo.
func isOurs(mi *mountinfo.Info) bool {
	return mi.FSType == fsType && mi.Source == mountSource && mi.Root == "/"
}

// ownMountID is the id of the topmost mount at target if that mount is
// ours (isOurs), else 0: for a volume taken back from the keeper, whose
// id publish did not note. The volume is served by now, so looking at
// its target does not wait.
func (d *Driver) ownMountID(target string) uint64 {
	p, err := d.guard.Check(target)
	if err != nil {
		return 0
	}
	id, err := d.mounter.TopID(p)
	if err != nil || id == 0 {
		return 0
	}
	mi, err := d.mounter.At(p)
	if err != nil || mi == nil || uint64(mi.ID) != id || !isOurs(mi) {
		return 0
	}
	return id
}

// prepareTarget makes the target ready for a mount and says whether it
// created the folder (the only thing a failed publish may remove). kubelet
// creates only the parent. A dead mount of ours there is unmounted; any
// other mount, or anything that is not a folder, is refused untouched.
//
// overDead: a dead mount of ours (an earlier process's, which no keeper
// held) is not unmounted: the new volume is mounted on top of it. A
// container whose volumeMount has mountPropagation HostToContainer holds
// a copy of the dead mount that is a slave of it, so a mount stacked on
// the dead one reaches the container, and it reads again without a
// restart; an unmount would not reach its copy. Unpublish removes the
// dead mounts under ours (clearDead).
func (d *Driver) prepareTarget(p targetpath.Path) (created bool, err error) {
	defer fusefs.Slot()() // lstat, mkdir and rmdir block a thread each: bounded with mounts
	fi, err := os.Lstat(p.Name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := unix.Mkdir(p.Name, 0o750); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return false, status.Errorf(codes.FailedPrecondition, "target %s: its parent folder does not exist", p.Name)
			}
			return false, status.Errorf(codes.Internal, "create target %s: %v", p.Name, err)
		}
		return true, nil
	case err != nil && mountutils.IsCorruptedMnt(err):
		mi, merr := d.mounter.At(p)
		if merr != nil {
			return false, status.Errorf(codes.Internal, "check target %s: %v", p.Name, merr)
		}
		if mi == nil || !isOurs(mi) {
			return false, status.Errorf(codes.AlreadyExists, "target %s holds a dead mount not made by this plugin", p.Name)
		}
		d.log.Info("mounting over a dead mount of ours at the target", "target", p.Name)
		return false, nil // see overDead
	case err != nil:
		return false, status.Errorf(codes.Internal, "check target %s: %v", p.Name, errnoOf(err))
	case !fi.IsDir():
		return false, status.Errorf(codes.FailedPrecondition, "target %s exists and is not a folder", p.Name)
	}
	mi, err := d.mounter.At(p)
	if err != nil {
		return false, status.Errorf(codes.Internal, "check target %s: %v", p.Name, err)
	}
	if mi != nil {
		if !isOurs(mi) || !d.mounter.Dead(p.Name) {
			return false, status.Errorf(codes.AlreadyExists, "target %s is already a mount point (%q) not made by this process", p.Name, mi.FSType)
		}
		// Ours, of an earlier process, and its connection is gone
		// (lstat still answered from the cache).
		d.log.Info("mounting over a dead mount of ours at the target", "target", p.Name)
		return false, nil // see overDead
	}
	// kubelet hands an empty folder or none: a mount over files would hide
	// what someone else put there (another Pod's volumes, say).
	if empty, err := isEmptyDir(p.Name); err != nil {
		return false, status.Errorf(codes.Internal, "check target %s: %v", p.Name, errnoOf(err))
	} else if !empty {
		return false, status.Errorf(codes.FailedPrecondition, "target %s is a folder that is not empty: left as it is", p.Name)
	}
	return false, nil
}

// isEmptyDir reads at most one entry of the folder path.
func isEmptyDir(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(names) == 0, err
}

// releaseTarget handles an unpublish of a target this process does not
// serve. Nothing mounted there: OK, untouched (never published, or
// already unpublished). A dead mount of an earlier process of ours: clean
// it. Anything else is refused untouched.
func (d *Driver) releaseTarget(p targetpath.Path) error {
	mi, err := d.mounter.At(p)
	if err != nil {
		return status.Errorf(codes.Internal, "check target %s: %v", p.Name, err)
	}
	if mi == nil {
		return nil
	}
	if !isOurs(mi) || !d.mounter.Dead(p.Name) {
		return status.Errorf(codes.FailedPrecondition, "target %s is a %q mount this plugin does not serve: left as it is", p.Name, mi.FSType)
	}
	if err := d.clearDead(p); err != nil {
		return err
	}
	return removeEmptyDir(p.Name)
}

// clearDead unmounts the dead mounts of ours at the top of the target, one
// after the other: what a publish over a dead mount (prepareTarget) left
// under the volume. It stops at the first mount that is not ours or not
// dead.
func (d *Driver) clearDead(p targetpath.Path) error {
	for range maxStacked {
		mi, err := d.mounter.At(p)
		if err != nil {
			return status.Errorf(codes.Internal, "check target %s: %v", p.Name, err)
		}
		if mi == nil || !isOurs(mi) || !d.mounter.Dead(p.Name) {
			return nil
		}
		if err := d.mounter.Unmount(p.Name); err != nil {
			return status.Errorf(codes.Internal, "clean dead mount: %v", err)
		}
		d.log.Info("cleaned a dead mount of ours at the target", "target", p.Name)
	}
	return nil
}

// maxStacked bounds clearDead: a volume over a few dead ones at most.
const maxStacked = 16

// removeEmptyDir removes path if it is an empty folder, and leaves
// anything else (a file, a folder with files, nothing) as it is.
func removeEmptyDir(path string) error {
	release := fusefs.Slot()
	err := unix.Rmdir(path)
	release()
	switch {
	case err == nil, errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTEMPTY),
		errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOTDIR):
		return nil
	default:
		return status.Errorf(codes.Internal, "remove target %s: %v", path, err)
	}
}

// errnoOf keeps only the errno of a filesystem error: the path is named
// by the message around it.
func errnoOf(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
