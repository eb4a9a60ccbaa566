package fusefs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

func (fs *FS) Lookup(_ <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	parent := fs.resolve(h.NodeId)
	var r ref
	var id uint64
	switch parent.kind {
	case kindRoot:
		r, id = fs.lookupRoot(name)
	case kindLink:
		return fuse.Status(syscall.ENOTDIR)
	case kindStable:
		if !parent.v.nodes[parent.idx].isDir() {
			return fuse.Status(syscall.ENOTDIR)
		}
		r, id = fs.lookupStable(parent.v, parent.name, name)
	case kindNode:
		if parent.v.nodes[parent.idx].mode&syscall.S_IFMT != sIFDIR {
			return fuse.Status(syscall.ENOTDIR)
		}
		if idx, ok := parent.v.child(parent.idx, name); ok {
			r, id = ref{kind: kindNode, v: parent.v, idx: idx}, parent.v.id(idx)
		}
	default:
		return fuse.Status(syscall.ESTALE)
	}
	if r.kind == kindNone {
		return fuse.ENOENT
	}
	if r.kind == kindNode {
		r.v.refs.Add(1) // the kernel now holds one more lookup of this version
	}
	fs.entry(r, id, out)
	return fuse.OK
}

// Forget lets a retired version go once the kernel holds none of its nodes.
func (fs *FS) Forget(id, nlookup uint64) {
	if id&linkBit != 0 && fs.opts.SubPathUpdates {
		fs.forgetStable(id, nlookup)
		return
	}
	if id == rootID || id&linkBit != 0 {
		return
	}
	fs.mu.RLock()
	v := fs.versions[id>>genShift]
	fs.mu.RUnlock()
	if v != nil && v.refs.Add(-int64(nlookup)) <= 0 {
		fs.maybeDrop(v)
	}
}

func (fs *FS) GetAttr(_ <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	r := fs.resolve(in.NodeId)
	if r.kind == kindNone {
		return fuse.Status(syscall.ESTALE)
	}
	fs.attr(r, in.NodeId, &out.Attr)
	out.SetTimeout(cacheTimeout)
	return fuse.OK
}

func (fs *FS) Readlink(_ <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	r := fs.resolve(h.NodeId)
	switch {
	case r.kind == kindLink:
		return []byte("..data/" + r.name), fuse.OK
	case r.kind == kindNode && r.v.nodes[r.idx].mode&syscall.S_IFMT == sIFLNK:
		return r.v.nodes[r.idx].data, fuse.OK
	case r.kind == kindNone:
		return nil, fuse.Status(syscall.ESTALE)
	}
	return nil, fuse.EINVAL
}

// Open answers ENOSYS: the kernel then stops sending OPEN, FLUSH and
// RELEASE for the whole mount and keeps file pages cached, so a warm
// open+read+close costs no round trip. Every version has its own inodes,
// so cached pages are never stale.
//
// A SubPathUpdates volume answers instead (the kernel's choice is for the
// whole connection): a stable file's open names the version it shows in
// its handle and reads past the page cache, which its inode shares with
// every other open (see stable.go); a version's file keeps its pages.
func (fs *FS) Open(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if !fs.opts.SubPathUpdates {
		return fuse.ENOSYS
	}
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	r := fs.resolve(in.NodeId)
	switch {
	case r.kind == kindNone:
		return fuse.Status(syscall.ESTALE)
	case r.kind == kindStable && r.v.nodes[r.idx].isDir():
		return fuse.Status(syscall.EISDIR)
	case r.kind == kindStable:
		r.v.opens.Add(1) // until Release: the version stays
		out.Fh = r.v.gen
		out.OpenFlags = fuse.FOPEN_DIRECT_IO
	default:
		out.OpenFlags = fuse.FOPEN_KEEP_CACHE
	}
	return fuse.OK
}

// Release ends an open of a stable file: its version may go.
func (fs *FS) Release(_ <-chan struct{}, in *fuse.ReleaseIn) {
	if in.Fh == 0 {
		return
	}
	fs.mu.RLock()
	v := fs.versions[in.Fh]
	fs.mu.RUnlock()
	if v != nil && v.opens.Add(-1) <= 0 {
		fs.maybeDrop(v)
	}
}

func (fs *FS) Flush(_ <-chan struct{}, _ *fuse.FlushIn) fuse.Status { return fuse.ENOSYS }

func (fs *FS) Read(_ <-chan struct{}, in *fuse.ReadIn, _ []byte) (fuse.ReadResult, fuse.Status) {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	r := fs.resolve(in.NodeId)
	if r.kind == kindStable {
		r = fs.opened(r, in.Fh)
	}
	if r.kind != kindNode && r.kind != kindStable {
		return nil, fuse.Status(syscall.ESTALE)
	}
	n := &r.v.nodes[r.idx]
	if n.mode&syscall.S_IFMT != sIFREG {
		return nil, fuse.Status(syscall.EISDIR)
	}
	// The slice stays valid after unlock, while go-fuse writes the reply:
	// a version's bytes are let go only once the kernel has forgotten all
	// its nodes, so no read of it is in flight (see maybeDrop).
	off := min(in.Offset, uint64(len(n.data)))
	end := min(off+uint64(in.Size), uint64(len(n.data)))
	return fuse.ReadResultData(n.data[off:end]), fuse.OK
}

func (fs *FS) OpenDir(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	r := fs.resolve(in.NodeId)
	switch {
	case r.kind == kindRoot, (r.kind == kindNode || r.kind == kindStable) && r.v.nodes[r.idx].isDir():
		// Listings are cached by the kernel until the root (or a stable
		// folder) is invalidated at a switch; version folders never change.
		out.OpenFlags = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
		return fuse.OK
	case r.kind == kindNone:
		return fuse.Status(syscall.ESTALE)
	}
	return fuse.Status(syscall.ENOTDIR)
}

func (fs *FS) ReadDir(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	r := fs.resolve(in.NodeId)
	var ents []fuse.DirEntry
	switch r.kind {
	case kindRoot:
		v := fs.cur
		ents = make([]fuse.DirEntry, 0, 4+len(v.top))
		ents = append(ents,
			fuse.DirEntry{Name: ".", Mode: sIFDIR, Ino: rootID},
			fuse.DirEntry{Name: "..", Mode: sIFDIR, Ino: rootID},
			fuse.DirEntry{Name: v.name, Mode: sIFDIR, Ino: v.id(idxFolder)},
			fuse.DirEntry{Name: "..data", Mode: sIFLNK, Ino: v.id(idxData)})
		for _, name := range v.top {
			ents = append(ents, fs.topEntry(v, name))
		}
	case kindNode, kindStable:
		n := &r.v.nodes[r.idx]
		ents = make([]fuse.DirEntry, 0, 2+len(n.children))
		ents = append(ents,
			fuse.DirEntry{Name: ".", Mode: sIFDIR, Ino: in.NodeId},
			fuse.DirEntry{Name: "..", Mode: sIFDIR, Ino: rootID})
		for _, c := range n.children {
			cn := &r.v.nodes[c]
			ino := r.v.id(c)
			if r.kind == kindStable {
				ino = stableID(cn.path, cn.isDir())
			}
			ents = append(ents, fuse.DirEntry{Name: cn.name, Mode: cn.mode & syscall.S_IFMT, Ino: ino})
		}
	default:
		return fuse.Status(syscall.ESTALE)
	}
	for i := int(in.Offset); i < len(ents); i++ {
		e := ents[i]
		e.Off = uint64(i + 1)
		if !out.AddDirEntry(e) {
			break
		}
	}
	return fuse.OK
}

func (fs *FS) ReleaseDir(*fuse.ReleaseIn) {}

func (fs *FS) Access(<-chan struct{}, *fuse.AccessIn) fuse.Status { return fuse.OK }

func (fs *FS) StatFs(_ <-chan struct{}, _ *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	v := fs.cur
	*out = fuse.StatfsOut{}
	out.Bsize, out.Frsize, out.NameLen = 4096, 4096, 255
	out.Blocks = uint64(v.size+4095) / 4096
	out.Files = uint64(len(v.nodes) + len(v.top) + 1)
	return fuse.OK
}
