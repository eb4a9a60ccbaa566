package fusefs

import (
	"errors"
	"slices"
	"syscall"
	"time"

	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/projection"
)

// ErrUnmounted is returned by Update once the mount is gone.
var ErrUnmounted = errors.New("volume is unmounted")

// Update switches the volume to a new version. A version's whole life, in
// order (the first three under fs.mu, so a reader resolves either all old
// or all new files):
//
//  1. Build: newVersion lays out p with node IDs from its sorted paths, and
//     shareFiles puts the bytes into a block of secret memory
//     (secmem.Share), reusing the block of any version with the same
//     contents.
//  2. Journal: the keeper, if any, gets the version (Journal.PutVersion)
//     before the kernel can see a node of it, so a server that dies
//     mid-switch is replaced by one that answers for every ID.
//  3. Switch: install makes it current; from now on `..data` resolves to
//     the new folder.
//  4. Invalidate: invalidate tells the kernel to drop its cached entries of
//     the old version (FUSE_NOTIFY_DELETE, which also gives watchers
//     IN_DELETE_SELF); files opened before keep reading the old version.
//     In a SubPathUpdates volume the stable nodes that changed are
//     invalidated instead of deleted (stableNotices).
//  5. Grace: after Options.Grace, hide stops finding the old folder by name
//     and tells the kernel it is gone; readers who resolved `..data` just
//     before the switch had the grace to open their files.
//  6. Retire: maybeDrop, called by hide and again by every Forget (and
//     Release), removes a hidden version once the kernel holds none of its
//     nodes, no open names it and no stable node shows it, and tells
//     the journal (Journal.DropVersion). Versions restored from a snapshot
//     have unknown lookup counts and are kept until the unmount.
//  7. Wipe: version.wipe releases the block; the last holder zeroes and
//     unmaps it (secmem.Block.Release). At the end of the session wipeAll
//     does the same for every version left.
func (fs *FS) Update(p *projection.Payload) error {
	fs.mu.Lock()
	if fs.ended {
		fs.mu.Unlock()
		return ErrUnmounted // a change that raced the unmount
	}
	old := fs.cur
	v, err := newVersion(old.gen+1, time.Now(), p, fs.perm)
	if err != nil {
		fs.mu.Unlock()
		return err
	}
	v.stamp(old, nil)
	// Write ahead: the keeper learns of the version before the kernel can
	// see a node of it, so a server that dies mid-switch is replaced by
	// one that can answer for every ID the kernel holds.
	if fs.journal != nil {
		if err := fs.journal.PutVersion(v.state()); err != nil {
			fs.opts.Logger.Warn("keeper lost; this mount will not survive a restart", "mount", fs.dir, "err", err)
			fs.journal = nil
		}
	}
	fs.install(v)
	fs.mu.Unlock()
	metrics.Switches.Inc()

	fs.invalidate(old, v)
	time.AfterFunc(fs.opts.Grace, func() { fs.hide(old) })
	if fs.opts.SubPathUpdates {
		fs.dropUnpinned() // a path that came back frees the version kept for it
	}
	fs.opts.Logger.Debug("volume switched", "mount", fs.dir, "version", v.gen, "files", len(p.Files), "bytes", v.size)
	return nil
}

// invalidate tells the kernel what the switch from old to v changed. Errors
// (ENOENT: nothing cached) are expected and ignored.
func (fs *FS) invalidate(old, v *version) {
	// First `..data`, so new lookups reach the new version at once.
	ns := []Notice{{Op: NoticeDelete, Parent: rootID, Child: old.id(idxData), Name: "..data"}}
	// Then the old files: watchers of a file get IN_DELETE_SELF. A file
	// looked up again by a reader who resolved the old folder gets its
	// inode back, since we still answer for the old version.
	ns = appendTree(ns, old, idxFolder, false)
	if fs.opts.SubPathUpdates {
		fs.notify(append(append(ns, fs.stableNotices(old, v)...), Notice{Op: NoticeInode, Parent: rootID}))
		return
	}
	for _, name := range old.top {
		if _, ok := slices.BinarySearch(v.top, name); !ok {
			ns = append(ns, Notice{Op: NoticeDelete, Parent: rootID, Child: linkID(name), Name: name})
		}
	}
	for _, name := range v.top {
		if _, ok := slices.BinarySearch(old.top, name); !ok {
			ns = append(ns, Notice{Op: NoticeEntry, Parent: rootID, Name: name}) // a negative entry, if any
		}
	}
	// The root's attributes and cached listing changed.
	ns = append(ns, Notice{Op: NoticeInode, Parent: rootID})
	fs.notify(ns)
}

// notify sends notices through the journal (the keeper) if there is one
// and it takes them in time (Journal.Notify is bounded), else writes them
// itself (sendSelf).
func (fs *FS) notify(ns []Notice) {
	fs.mu.RLock()
	j, fd := fs.journal, fs.fd
	fs.mu.RUnlock()
	if j != nil {
		if err := j.Notify(ns); err == nil {
			return
		}
		metrics.NoticesSelf.Inc()
	}
	if fd >= 0 {
		sendSelf(fd, ns)
	}
}

// appendTree adds FUSE_NOTIFY_DELETE notices for the files (dirs false) or
// the folders (dirs true) below dir, children before parents: the kernel
// refuses to delete a folder with cached entries.
func appendTree(ns []Notice, v *version, dir uint32, dirs bool) []Notice {
	for _, c := range v.nodes[dir].children {
		isDir := v.nodes[c].mode&syscall.S_IFMT == sIFDIR
		if isDir {
			ns = appendTree(ns, v, c, dirs)
		}
		if isDir == dirs {
			ns = append(ns, Notice{Op: NoticeDelete, Parent: v.id(dir), Child: v.id(c), Name: v.nodes[c].name})
		}
	}
	return ns
}

// hide ends a retired version's grace: its folder is no longer found by
// name and the kernel is told the folders are gone. A deleted folder is
// dead for the kernel (S_DEAD: nothing can be looked up in it), which is
// why this waits for the grace instead of happening at the switch; a watch
// on `..data` gets its IN_DELETE_SELF now.
func (fs *FS) hide(v *version) {
	v.hidden.Store(true)
	ns := appendTree(nil, v, idxFolder, true)
	fs.notify(append(ns, Notice{Op: NoticeDelete, Parent: rootID, Child: v.id(idxFolder), Name: v.name}))
	fs.maybeDrop(v)
}

// maybeDrop releases a hidden version once the kernel holds none of its
// nodes (no open file, no cached inode); Forget calls it again.
//
// When secret bytes may go. A version's bytes live in a shared block of
// secret memory that is unmapped when its last holder lets go, so a read
// after wipe would fault, not just see zeros. They are let go at only two
// points, and both are after the last possible read:
//  1. here, once the kernel has forgotten every node of the version and
//     released every open of a stable file that named it. The kernel
//     holds a node for the whole life of any request on it (a READ keeps
//     its file open, and RELEASE comes after the last read returned;
//     readahead keeps its pages locked until the reply), so no reply is
//     being written from these bytes: go-fuse writes a Read's result
//     straight from our slice after Read returned.
//  2. in wipeAll, once Serve has returned: go-fuse waits there for every
//     request loop, so no handler runs.
//
// Everything else that reads the bytes (Read, Shows, snapshots for the
// keeper) does so under fs.mu while the version is in fs.versions, and
// both points above remove it under the write lock first.
func (fs *FS) maybeDrop(v *version) {
	if !v.hidden.Load() || v.refs.Load() > 0 || v.opens.Load() > 0 || v.refsUnknown {
		return
	}
	fs.mu.Lock()
	if fs.versions[v.gen] != v || v.refs.Load() > 0 || v.opens.Load() > 0 || fs.opts.SubPathUpdates && fs.pinned(v) {
		fs.mu.Unlock()
		return
	}
	delete(fs.versions, v.gen)
	j := fs.journal
	fs.mu.Unlock()
	if j != nil {
		j.DropVersion(v.gen)
	}
	v.wipe()
	fs.opts.Logger.Debug("version released", "mount", fs.dir, "version", v.gen)
}

// wipeAll lets go of every version's bytes once the mount is gone (the
// session has ended) or was never served (Mount failed).
func (fs *FS) wipeAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for gen, v := range fs.versions {
		v.wipe()
		delete(fs.versions, gen)
	}
}
