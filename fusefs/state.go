package fusefs

import (
	"bytes"
	"fmt"
	"maps"
	"sort"
	"syscall"
	"time"

	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secmem"
)

// Snapshot is everything a new server needs to take over a live mount:
// every version the kernel may still reference, with the exact generation
// numbers and names, so node IDs rebuild to what they meant. It holds the
// secret bytes and lives only in memory (ours, and the keeper's).
type Snapshot struct {
	Start    time.Time
	Current  uint64
	Versions []VersionState
	Links    []string // every top-level name ever linked
	// SubPath: the volume has stable nodes (Options.SubPathUpdates);
	// their IDs mean nothing to a server that does not know it.
	SubPath bool
}

// VersionState is one version as a snapshot carries it.
type VersionState struct {
	Gen     uint64
	Name    string
	Created time.Time
	Files   map[string]projection.File
	// Changed is when each path (files and folders) last changed as a
	// stable node shows it (its mtime); nil or missing: Created.
	Changed map[string]time.Time
	// Sources says which source gave each file, for a volume of several
	// (projection.Payload.Sources); nil otherwise.
	Sources map[string]int
	// mem, once Lock has run, holds the bytes of Files (never encoded).
	mem *secmem.Block
}

// Journal is told of every version before it becomes visible and of every
// version dropped, so a keeper always knows what the kernel may ask for.
type Journal interface {
	PutVersion(VersionState) error
	DropVersion(gen uint64)
	// Notify delivers notices to the kernel from the keeper's process,
	// so that this one never waits on its own mount (see Notice).
	Notify([]Notice) error
}

func (v *version) state() VersionState {
	s := VersionState{Gen: v.gen, Name: v.name, Created: v.created, Files: map[string]projection.File{}, Sources: v.sources}
	for i, n := range v.nodes {
		if n.mode&syscall.S_IFMT == sIFREG {
			s.Files[n.path] = projection.File{Mode: n.mode & 0o7777, Data: n.data}
		}
		if i > idxData && !n.changed.Equal(v.created) {
			if s.Changed == nil {
				s.Changed = map[string]time.Time{}
			}
			s.Changed[n.path] = n.changed
		}
	}
	return s
}

// Attach registers a snapshot (with a keeper) and hands the journal it
// returns every later change, under one lock so nothing is missed.
func (fs *FS) Attach(register func(Snapshot) (Journal, error)) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	j, err := register(fs.snapshot())
	if err != nil {
		return err
	}
	fs.journal = j
	return nil
}

// DropJournal stops telling the journal (the mount is being unmounted on
// purpose, or the keeper gave it up).
func (fs *FS) DropJournal() {
	fs.mu.Lock()
	fs.journal = nil
	fs.mu.Unlock()
}

func (fs *FS) snapshot() Snapshot {
	s := Snapshot{Start: fs.start, Current: fs.cur.gen, SubPath: fs.opts.SubPathUpdates}
	for _, v := range fs.versions {
		s.Versions = append(s.Versions, v.state())
	}
	sort.Slice(s.Versions, func(i, j int) bool { return s.Versions[i].Gen < s.Versions[j].Gen })
	for _, name := range fs.links {
		s.Links = append(s.Links, name)
	}
	sort.Strings(s.Links)
	return s
}

// Restore rebuilds the filesystem of a live mount from a snapshot; Serve
// then takes the mount over. The kernel's lookup counts of restored
// versions are unknown, so they are never dropped before the unmount.
// The snapshot, not opts, says whether the volume has stable nodes: the
// kernel holds the IDs the earlier server gave.
func Restore(opts Options, s Snapshot) (*FS, error) {
	opts.SubPathUpdates = s.SubPath
	fs, err := New(opts, &projection.Payload{})
	if err != nil {
		return nil, err
	}
	fs.versions = map[uint64]*version{}
	fs.start = s.Start
	var cur *version
	for _, vs := range s.Versions {
		v, err := newVersion(vs.Gen, vs.Created, &projection.Payload{Files: vs.Files, Sources: vs.Sources}, fs.perm)
		if err != nil {
			fs.wipeAll()
			return nil, err
		}
		v.name = vs.Name
		v.nodes[idxFolder].name = vs.Name
		v.nodes[idxData].data = []byte(vs.Name)
		v.stamp(nil, vs.Changed)
		v.refsUnknown = true
		fs.versions[v.gen] = v
		if v.gen == s.Current {
			cur = v
		} else {
			time.AfterFunc(fs.opts.Grace, func() { fs.hide(v) })
		}
	}
	if cur == nil {
		fs.wipeAll()
		return nil, fmt.Errorf("snapshot has no current version %d", s.Current)
	}
	fs.install(cur)
	if fs.opts.SubPathUpdates {
		fs.restoreStable()
		return fs, nil
	}
	for _, name := range s.Links {
		fs.links[linkID(name)] = name
	}
	return fs, nil
}

// Current is what the current version shows: its files (bytes shared
// with the filesystem: read only, and only while it is mounted) and,
// for a volume of several sources, which source gave each.
func (fs *FS) Current() *projection.Payload {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	p := &projection.Payload{Files: map[string]projection.File{}, Sources: fs.cur.sources}
	for _, n := range fs.cur.nodes {
		if n.mode&syscall.S_IFMT == sIFREG {
			p.Files[n.path] = projection.File{Mode: n.mode & 0o7777, Data: n.data}
		}
	}
	return p
}

// Shows reports whether the current version shows exactly p, so a
// refresh that changes nothing does not switch versions.
func (fs *FS) Shows(p *projection.Payload) bool {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	files := 0
	for _, n := range fs.cur.nodes {
		if n.mode&syscall.S_IFMT != sIFREG {
			continue
		}
		files++
		f, ok := p.Files[n.path]
		if !ok || f.Mode&0o7777 != n.mode&0o7777 || !bytes.Equal(f.Data, n.data) {
			return false
		}
	}
	return files == len(p.Files) && maps.Equal(p.Sources, fs.cur.sources)
}

// Reconcile replays, after a takeover, the notices of every switch whose
// notices the dead server may not have delivered: the kernel may still
// cache `..data` pointing at a replaced version, which stops resolving once
// its grace ends. Notices about entries the kernel no longer caches are
// ignored by it, so replaying is harmless. Call it once the journal is
// attached, so the keeper delivers them.
func (fs *FS) Reconcile() {
	fs.mu.RLock()
	cur := fs.cur
	var old []*version
	for _, v := range fs.versions {
		if v != cur {
			old = append(old, v)
		}
	}
	fs.mu.RUnlock()
	for _, v := range old {
		fs.invalidate(v, cur)
	}
}

// Wipe overwrites the secret bytes a snapshot carries (once a server or
// the keeper no longer needs them).
func (s *Snapshot) Wipe() {
	for _, v := range s.Versions {
		v.Wipe()
	}
}

// Wipe overwrites the bytes of one version's files, or lets go of the
// shared memory Lock moved them to. It is for states that own their bytes
// (decoded from the keeper's wire, or locked): a state taken from a live
// FS shares that FS's bytes and is never wiped.
func (v VersionState) Wipe() {
	if v.mem != nil {
		v.mem.Release()
		return
	}
	for _, f := range v.Files {
		clear(f.Data)
	}
}

// Lock moves the bytes of v's files into shared secret memory (locked,
// one copy per content as for a live version) and zeroes the copies they
// were in. For a holder that keeps states long, as the keeper does; Wipe
// lets go of them. Lock on a locked state does nothing.
func (v *VersionState) Lock() error {
	if v.mem != nil {
		return nil
	}
	paths := make([]string, 0, len(v.Files))
	for k := range v.Files {
		paths = append(paths, k)
	}
	sort.Strings(paths)
	mem, data, err := shareFiles(&projection.Payload{Files: v.Files}, paths)
	if err != nil {
		return err
	}
	files := make(map[string]projection.File, len(paths))
	for i, k := range paths {
		clear(v.Files[k].Data)
		files[k] = projection.File{Mode: v.Files[k].Mode, Data: data[i]}
	}
	v.Files, v.mem = files, mem
	return nil
}

// Lock locks every version of the snapshot (see VersionState.Lock).
func (s *Snapshot) Lock() error {
	for i := range s.Versions {
		if err := s.Versions[i].Lock(); err != nil {
			return err
		}
	}
	return nil
}
