package fusefs

import (
	"bytes"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secmem"
)

// A version is one immutable snapshot of the volume: the hidden folder
// `..<timestamp>` and everything below it, plus the `..data` link that points
// at it. Each version has its own node IDs (gen<<genShift | index), so a
// switch never changes what an existing inode shows: the kernel keeps
// serving open files of an old version from that version's nodes.
type version struct {
	gen     uint64
	name    string // "..2006_01_02_15_04_05.<n>", kubelet's format
	created time.Time
	nodes   []node // index 0: the version folder; 1: the ..data link
	byPath  map[string]uint32
	// mem holds every file's bytes (see bytes.go); size is their total.
	// Released by wipe, after which no node's data may be read.
	mem  *secmem.Block
	size int
	top  []string
	// sources is the payload's Sources (which source gave each file),
	// kept for snapshots; nil for a volume of one source.
	sources map[string]int

	refs   atomic.Int64 // kernel lookups not yet forgotten
	opens  atomic.Int64 // open handles of stable files naming this version
	hidden atomic.Bool  // grace over: no longer found by name
	// refsUnknown: restored from a snapshot, so lookups made by the
	// previous server are not counted; kept until the unmount.
	refsUnknown bool
}

type node struct {
	name     string
	path     string // inside the version; "" for the folder itself
	mode     uint32 // S_IFxxx | permission bits
	data     []byte // file content (a slice of mem) or link target
	children []uint32
	subdirs  uint32
	// changed is when the node last changed as seen through a stable
	// node: its mtime and ctime there (see stamp).
	changed time.Time
}

func (n *node) isDir() bool { return n.mode&syscall.S_IFMT == sIFDIR }

const (
	genShift  = 24
	idxMask   = 1<<genShift - 1
	idxFolder = 0
	idxData   = 1
)

func (v *version) id(idx uint32) uint64 { return v.gen<<genShift | uint64(idx) }

// newVersion lays out a payload. Indices follow the sorted paths, so the
// same payload and gen always give the same node IDs (a restarted server
// can rebuild them). The file bytes go into shared secret memory (see
// shareFiles); a version that is not installed must be wiped.
func newVersion(gen uint64, now time.Time, p *projection.Payload, perm dirPerm) (*version, error) {
	paths := make([]string, 0, len(p.Files))
	for k := range p.Files {
		paths = append(paths, k)
	}
	slices.Sort(paths)
	if len(paths)*2+2 > idxMask {
		return nil, fmt.Errorf("volume has too many files: %d", len(paths))
	}
	mem, data, err := shareFiles(p, paths)
	if err != nil {
		return nil, err
	}
	v := &version{
		gen:     gen,
		name:    versionName(now, gen),
		created: now,
		byPath:  map[string]uint32{"": idxFolder},
		mem:     mem,
		sources: maps.Clone(p.Sources),
	}
	v.nodes = append(v.nodes,
		node{name: v.name, mode: sIFDIR | perm.dir},
		node{name: "..data", mode: sIFLNK | 0o777, data: []byte(v.name)})
	for i, p2 := range paths {
		parent := v.mkdirAll(path.Dir(p2), perm)
		v.add(parent, node{name: path.Base(p2), path: p2, mode: sIFREG | p.Files[p2].Mode&0o7777, data: data[i]})
		v.size += len(data[i])
	}
	v.top = projection.TopLevel(p)
	return v, nil
}

func (v *version) mkdirAll(dir string, perm dirPerm) uint32 {
	if dir == "." || dir == "" {
		return idxFolder
	}
	if idx, ok := v.byPath[dir]; ok {
		return idx
	}
	parent := v.mkdirAll(path.Dir(dir), perm)
	v.nodes[parent].subdirs++
	return v.add(parent, node{name: path.Base(dir), path: dir, mode: sIFDIR | perm.dir})
}

func (v *version) add(parent uint32, n node) uint32 {
	idx := uint32(len(v.nodes))
	v.nodes = append(v.nodes, n)
	v.byPath[n.path] = idx
	v.nodes[parent].children = append(v.nodes[parent].children, idx)
	return idx
}

// stamp sets each node's changed time: as recorded (a restored version),
// else kept from prev where the node shows the same there (same type and
// mode, and the same bytes or the same entries), else the version's
// creation, and never earlier than a changed node's time in prev, so a
// stable file's mtime advances at each switch that changes it.
func (v *version) stamp(prev *version, recorded map[string]time.Time) {
	for i := range v.nodes {
		n := &v.nodes[i]
		n.changed = v.created
		if t, ok := recorded[n.path]; ok {
			n.changed = t
			continue
		}
		if prev == nil || i == idxData {
			continue
		}
		j, ok := prev.byPath[n.path]
		if !ok {
			continue
		}
		switch o := &prev.nodes[j]; {
		case v.sameAs(uint32(i), prev, j):
			n.changed = o.changed
		case !n.changed.After(o.changed):
			n.changed = o.changed.Add(time.Nanosecond)
		}
	}
}

// sameAs reports whether node i shows what node j of o shows.
func (v *version) sameAs(i uint32, o *version, j uint32) bool {
	a, b := &v.nodes[i], &o.nodes[j]
	if a.mode != b.mode || len(a.children) != len(b.children) {
		return false
	}
	if !a.isDir() {
		return bytes.Equal(a.data, b.data)
	}
	for k, c := range a.children {
		x, y := &v.nodes[c], &o.nodes[b.children[k]]
		if x.name != y.name || x.mode&syscall.S_IFMT != y.mode&syscall.S_IFMT {
			return false
		}
	}
	return true
}

// child finds name inside the folder at index dir.
func (v *version) child(dir uint32, name string) (uint32, bool) {
	p := name
	if dir != idxFolder {
		p = v.nodes[dir].path + "/" + name
	}
	idx, ok := v.byPath[p]
	return idx, ok
}

// wipe lets go of the version's bytes: the last holder of its block
// zeroes and unmaps it. Callers make sure nothing reads them afterwards
// (see maybeDrop and wipeAll); wipe runs once per version.
func (v *version) wipe() {
	v.mem.Release()
	v.mem = nil
	for i := range v.nodes {
		if v.nodes[i].mode&syscall.S_IFMT == sIFREG {
			v.nodes[i].data = nil
		}
	}
}

// versionName follows kubelet's atomic writer ("..2006_01_02_15_04_05.N");
// the generation makes it unique even for two switches in one nanosecond.
func versionName(t time.Time, gen uint64) string {
	return t.UTC().Format("..2006_01_02_15_04_05.") + fmt.Sprintf("%09d%d", t.Nanosecond(), gen)
}

// isVersionName tells a name that may be a version folder, old or current.
func isVersionName(name string) bool {
	return strings.HasPrefix(name, "..") && name != "..data" && name != ".."
}
