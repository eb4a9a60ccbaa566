package fusefs

import (
	"hash/fnv"
	"maps"
	"slices"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Stable nodes (Options.SubPathUpdates). kubelet resolves a container's
// subPath with EvalSymlinks and bind-mounts the inode it reaches, so a
// bind of `key -> ..data/key` pins one version's file for good. In a
// SubPathUpdates volume every path below the root (a key's file, an item
// folder and what is in it) is instead a stable node: its ID is derived
// from the path and the file type alone, so it is the same in every
// version and in a restarted server, and it shows that path in the
// current version. What the kernel imposes, and how it is met:
//
//   - The page cache belongs to the inode and is shared by every open, so
//     a stable file is opened with FOPEN_DIRECT_IO and a file handle that
//     is the generation of the version it opened (Open): every READ of
//     that open comes from that version, a whole-file read is never a mix,
//     and READs re-queued after a takeover still resolve. The kernel's
//     choice not to send OPEN holds for the whole connection, so such a
//     volume answers every OPEN (version files get FOPEN_KEEP_CACHE: their
//     inodes never change) and pays a round trip per open and release;
//     max_read and the request size are raised for it (maxRead). Such a
//     file cannot be mapped MAP_SHARED (ENODEV); private mappings work.
//   - The kernel marks an inode bad when its ID comes back with another
//     type, so the type is part of the ID (stableID): a key that turns
//     from a file into a folder gets a new ID.
//   - A switch invalidates a stable node with FUSE_NOTIFY_INVAL_INODE and
//     the names that came or went with FUSE_NOTIFY_INVAL_ENTRY
//     (stableNotices), never FUSE_NOTIFY_DELETE: that clears the inode's
//     link count and marks a folder dead, and a bind of it would die.
//   - A path that goes away stays readable through the inodes the kernel
//     holds, as an unlinked file does (link count 0): it shows the newest
//     version that has it, which is kept (maybeDrop) until the kernel
//     forgets the node; if the path comes back, the node follows again.
type stableNode struct {
	path    string
	dir     bool
	lookups int64 // kernel lookups not yet forgotten
	// unknown: rebuilt from a snapshot, so the lookups of an earlier
	// server are not known; kept until the unmount.
	unknown bool
}

// stableID derives a stable node's ID from its path and type, so it is the
// same in every version and in a restarted server. It lies in the same
// half of the ID space as the links of a volume without SubPathUpdates,
// which has no stable nodes.
func stableID(p string, dir bool) uint64 {
	h := fnv.New64a()
	if dir {
		h.Write([]byte{'d'})
	} else {
		h.Write([]byte{'f'})
	}
	h.Write([]byte(p))
	return linkBit | h.Sum64()>>1
}

// showing finds the version and node a stable node shows: the current
// version's if it has the path with that type, else the newest version
// that has it (the path is gone, its bytes stay). Callers hold fs.mu.
func (fs *FS) showing(p string, dir bool) (*version, uint32, bool) {
	if idx, ok := fs.cur.byPath[p]; ok && fs.cur.nodes[idx].isDir() == dir {
		return fs.cur, idx, true
	}
	var best *version
	var at uint32
	for _, v := range fs.versions {
		if idx, ok := v.byPath[p]; ok && v.nodes[idx].isDir() == dir && (best == nil || v.gen > best.gen) {
			best, at = v, idx
		}
	}
	return best, at, best != nil
}

// resolveStable maps a stable node's ID to what it shows. Callers hold
// fs.mu.
func (fs *FS) resolveStable(id uint64) ref {
	fs.stableMu.Lock()
	sn := fs.stable[id]
	fs.stableMu.Unlock()
	if sn == nil {
		return ref{}
	}
	v, idx, ok := fs.showing(sn.path, sn.dir)
	if !ok {
		return ref{}
	}
	return ref{kind: kindStable, name: sn.path, v: v, idx: idx, orphan: v != fs.cur}
}

// lookupStable finds name in the stable folder dir ("" for the root),
// shown by version v, and counts the kernel's lookup. Callers hold fs.mu.
func (fs *FS) lookupStable(v *version, dir, name string) (ref, uint64) {
	p := name
	if dir != "" {
		p = dir + "/" + name
	}
	idx, ok := v.byPath[p]
	if !ok {
		return ref{}, 0
	}
	isDir := v.nodes[idx].isDir()
	id := stableID(p, isDir)
	fs.stableMu.Lock()
	sn := fs.stable[id]
	if sn == nil {
		sn = &stableNode{path: p, dir: isDir}
		fs.stable[id] = sn
	}
	sn.lookups++
	fs.stableMu.Unlock()
	return ref{kind: kindStable, name: p, v: v, idx: idx, orphan: v != fs.cur}, id
}

// forgetStable counts down a stable node's lookups; a node the kernel no
// longer holds is dropped, and so may be the version that kept its bytes.
func (fs *FS) forgetStable(id, nlookup uint64) {
	fs.stableMu.Lock()
	sn := fs.stable[id]
	gone := sn != nil && !sn.unknown
	if gone {
		sn.lookups -= int64(nlookup)
		gone = sn.lookups <= 0
	}
	if gone {
		delete(fs.stable, id)
	}
	fs.stableMu.Unlock()
	if gone {
		fs.dropUnpinned()
	}
}

// dropUnpinned retires the hidden versions nothing holds any more, once a
// stable node that may have kept one is gone or shows another version.
func (fs *FS) dropUnpinned() {
	fs.mu.RLock()
	var hidden []*version
	for _, v := range fs.versions {
		if v.hidden.Load() {
			hidden = append(hidden, v)
		}
	}
	fs.mu.RUnlock()
	for _, v := range hidden {
		fs.maybeDrop(v)
	}
}

// pinned reports whether a stable node the kernel holds shows v because
// its path is gone from the current version. Callers hold fs.mu.
func (fs *FS) pinned(v *version) bool {
	fs.stableMu.Lock()
	defer fs.stableMu.Unlock()
	for _, sn := range fs.stable {
		if shown, _, ok := fs.showing(sn.path, sn.dir); ok && shown == v {
			return true
		}
	}
	return false
}

// restoreStable makes a stable node of every path of every restored
// version: the kernel may hold any of them, with lookups not known.
func (fs *FS) restoreStable() {
	fs.stableMu.Lock()
	defer fs.stableMu.Unlock()
	for _, v := range fs.versions {
		for i := idxData + 1; i < len(v.nodes); i++ {
			n := &v.nodes[i]
			fs.stable[stableID(n.path, n.isDir())] = &stableNode{path: n.path, dir: n.isDir(), unknown: true}
		}
	}
}

// stableNotices are what a switch from old to v tells the kernel about the
// stable nodes: FUSE_NOTIFY_INVAL_ENTRY for each name that came, went or
// changed type in a folder the kernel may hold (so a lookup finds the new
// node, or none), and FUSE_NOTIFY_INVAL_INODE for each held node whose
// attributes, bytes or entries changed. Never a delete (see above).
func (fs *FS) stableNotices(old, v *version) []Notice {
	fs.stableMu.Lock()
	held := make(map[uint64]*stableNode, len(fs.stable))
	for id, sn := range fs.stable {
		held[id] = sn
	}
	fs.stableMu.Unlock()
	var ns []Notice
	dirs := map[string]bool{"": true}
	for _, w := range []*version{old, v} {
		for p, idx := range w.byPath {
			if p != "" && w.nodes[idx].isDir() {
				dirs[p] = true
			}
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		parent := uint64(rootID)
		if d != "" {
			if parent = stableID(d, true); held[parent] == nil {
				continue // not known to the kernel: nothing cached below
			}
		}
		for _, name := range changedNames(old, v, d) {
			ns = append(ns, Notice{Op: NoticeEntry, Parent: parent, Name: name})
		}
	}
	ids := slices.Sorted(maps.Keys(held))
	for _, id := range ids {
		sn := held[id]
		a, aok := nodeAt(old, sn.path, sn.dir)
		b, bok := nodeAt(v, sn.path, sn.dir)
		if aok != bok || aok && !a.changed.Equal(b.changed) {
			ns = append(ns, Notice{Op: NoticeInode, Parent: id})
		}
	}
	return ns
}

// changedNames lists the names in folder d that one of old and v has and
// the other has not, or has with another type.
func changedNames(old, v *version, d string) []string {
	kinds := func(w *version) map[string]bool {
		out := map[string]bool{}
		idx, ok := w.byPath[d]
		if !ok || !w.nodes[idx].isDir() {
			return out
		}
		for _, c := range w.nodes[idx].children {
			out[w.nodes[c].name] = w.nodes[c].isDir()
		}
		return out
	}
	a, b := kinds(old), kinds(v)
	var names []string
	for name, dir := range a {
		if d2, ok := b[name]; !ok || d2 != dir {
			names = append(names, name)
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func nodeAt(v *version, p string, dir bool) (*node, bool) {
	idx, ok := v.byPath[p]
	if !ok || v.nodes[idx].isDir() != dir {
		return nil, false
	}
	return &v.nodes[idx], true
}

// opened is what a READ of the stable node r through the handle fh reads:
// the node of the version the open named, whatever is current now.
// Callers hold fs.mu.
func (fs *FS) opened(r ref, fh uint64) ref {
	if v := fs.versions[fh]; v != nil {
		if idx, ok := v.byPath[r.name]; ok && !v.nodes[idx].isDir() {
			r.v, r.idx = v, idx
		}
	}
	return r
}

// topEntry is the root listing's entry of the top-level name: a link to
// `..data/name`, or in a SubPathUpdates volume the stable node itself.
func (fs *FS) topEntry(v *version, name string) fuse.DirEntry {
	if !fs.opts.SubPathUpdates {
		return fuse.DirEntry{Name: name, Mode: sIFLNK, Ino: linkID(name)}
	}
	n := &v.nodes[v.byPath[name]]
	return fuse.DirEntry{Name: name, Mode: n.mode & syscall.S_IFMT, Ino: stableID(name, n.isDir())}
}
