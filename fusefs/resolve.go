package fusefs

import (
	"syscall"

	"slices"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// ref is what a node ID stands for: the root, a top-level link, a node
// of one version, or a stable node (stable.go) and the node it shows.
type ref struct {
	kind   refKind
	name   string   // kindLink: the top-level name; kindStable: the path
	v      *version // kindNode, kindStable
	idx    uint32   // kindNode, kindStable
	orphan bool     // kindStable: the path is gone from the current version
}

type refKind uint8

const (
	kindNone refKind = iota
	kindRoot
	kindLink
	kindNode
	kindStable
)

// resolve maps a node ID to what it shows. Callers hold fs.mu for reading.
func (fs *FS) resolve(id uint64) ref {
	switch {
	case id == rootID:
		return ref{kind: kindRoot}
	case id&linkBit != 0 && fs.opts.SubPathUpdates:
		return fs.resolveStable(id)
	case id&linkBit != 0:
		if name, ok := fs.links[id]; ok {
			return ref{kind: kindLink, name: name}
		}
	default:
		if v, ok := fs.versions[id>>genShift]; ok && int(id&idxMask) < len(v.nodes) {
			return ref{kind: kindNode, v: v, idx: uint32(id & idxMask)}
		}
	}
	return ref{}
}

// lookupRoot finds a name in the volume's root folder.
func (fs *FS) lookupRoot(name string) (ref, uint64) {
	v := fs.cur
	switch {
	case name == "..data":
		return ref{kind: kindNode, v: v, idx: idxData}, v.id(idxData)
	case isVersionName(name):
		// Retired versions stay reachable by name for their grace, so a reader who read `..data` just before a
		// switch still finds the folder it was pointed at.
		for _, o := range fs.versions {
			if o.name == name && !o.hidden.Load() {
				return ref{kind: kindNode, v: o, idx: idxFolder}, o.id(idxFolder)
			}
		}
	case fs.opts.SubPathUpdates:
		return fs.lookupStable(v, "", name)
	default:
		if _, ok := slices.BinarySearch(v.top, name); ok {
			id := linkID(name)
			return ref{kind: kindLink, name: name}, id
		}
	}
	return ref{}, 0
}

// attr fills the attributes of r, whose ID is id.
func (fs *FS) attr(r ref, id uint64, out *fuse.Attr) {
	*out = fuse.Attr{Ino: id, Owner: fuse.Owner{Uid: fs.opts.UID, Gid: fs.gid}, Blksize: 4096}
	var t time.Time
	switch r.kind {
	case kindRoot:
		out.Mode = sIFDIR | fs.perm.root
		out.Nlink = 3
		out.Size = uint64(20 * (4 + len(fs.cur.top))) // as tmpfs counts
		t = fs.switched
	case kindLink:
		out.Mode = sIFLNK | 0o777
		out.Nlink = 1
		out.Size = uint64(len("..data/") + len(r.name))
		t = fs.start
	case kindNode, kindStable:
		n := &r.v.nodes[r.idx]
		out.Mode = n.mode
		out.Size = uint64(len(n.data))
		out.Nlink = 1
		if n.mode&syscall.S_IFMT == sIFDIR {
			out.Nlink = 2 + n.subdirs
			out.Size = uint64(20 * (2 + len(n.children)))
		}
		t = r.v.created
		if r.kind == kindStable {
			t = n.changed
		}
		if r.orphan {
			out.Nlink = 0 // gone from the volume, held open: unlinked
		}
	}
	out.Blocks = (out.Size + 511) / 512
	out.SetTimes(&t, &t, &t)
}

func (fs *FS) entry(r ref, id uint64, out *fuse.EntryOut) {
	out.NodeId = id
	out.Generation = 1
	out.SetEntryTimeout(cacheTimeout)
	out.SetAttrTimeout(cacheTimeout)
	fs.attr(r, id, &out.Attr)
}
