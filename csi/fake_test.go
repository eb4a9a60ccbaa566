package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secret"
	"github.com/secretfs/secretfs/targetpath"
)

// The fakes below let the driver's rules run without root: fakeMounter is
// a mount table in memory, fakeMaker a VolumeMaker whose volumes are
// entries in that table. Targets are real folders in the test's temp
// folder (the rules mkdir, lstat, read and rmdir them as on a node); only
// what would be mounted on them is pretended.

// fakeMounter is a mount table: per mount point, a stack of mounts, the
// last on top, as mountinfo lists them.
type fakeMounter struct {
	t        *testing.T
	mu       sync.Mutex
	nextID   int
	stacks   map[string][]*fakeMount
	unmounts []string // Unmount calls, in order
	// unmountErr, if set, fails Unmount (and a fake volume's Unmount).
	unmountErr error
}

type fakeMount struct {
	info mountinfo.Info
	dead bool
}

// rootMountID is the id TopID gives a path that is no mount point: the
// mount of the temp folder.
const rootMountID = 1

func newFakeMounter(t *testing.T) *fakeMounter {
	return &fakeMounter{t: t, nextID: 100, stacks: map[string][]*fakeMount{}}
}

// add mounts a filesystem at dir (a folder that exists) and returns its id.
func (m *fakeMounter) add(dir, fstype, source, root string, dead bool) int {
	m.t.Helper()
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		m.t.Fatalf("fake mount at %s: not a folder (%v)", dir, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextID++
	m.stacks[dir] = append(m.stacks[dir], &fakeMount{info: mountinfo.Info{
		ID: m.nextID, Mountpoint: dir, FSType: fstype, Source: source, Root: root,
	}, dead: dead})
	return m.nextID
}

// ours mounts a plugin mount (of an earlier process) at dir, making dir.
func (m *fakeMounter) ours(dir string, dead bool) int {
	m.t.Helper()
	must(m.t, os.MkdirAll(dir, 0o750))
	return m.add(dir, fsType, mountSource, "/", dead)
}

// remove takes the mount id off dir's stack, wherever it lies.
func (m *fakeMounter) remove(dir string, id int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stacks[dir]
	for i, fm := range s {
		if fm.info.ID == id {
			m.stacks[dir] = append(s[:i:i], s[i+1:]...)
			return true
		}
	}
	return false
}

// count is how many mounts lie at dir.
func (m *fakeMounter) count(dir string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.stacks[dir])
}

func (m *fakeMounter) top(dir string) *fakeMount {
	if s := m.stacks[dir]; len(s) > 0 {
		return s[len(s)-1]
	}
	return nil
}

func (m *fakeMounter) unmounted() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.unmounts...)
}

func (m *fakeMounter) At(p targetpath.Path) (*mountinfo.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fm := m.top(p.Real); fm != nil {
		mi := fm.info
		return &mi, nil
	}
	return nil, nil
}

func (m *fakeMounter) TopID(p targetpath.Path) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fm := m.top(p.Real); fm != nil {
		return uint64(fm.info.ID), nil
	}
	if _, err := os.Lstat(p.Name); err != nil {
		return 0, err
	}
	return rootMountID, nil
}

func (m *fakeMounter) Below(g *targetpath.Guard, fstype string) ([]*mountinfo.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*mountinfo.Info
	for dir, s := range m.stacks {
		rel, err := filepath.Rel(g.Root(), dir)
		if err != nil || rel == "." || rel == ".." || filepath.IsAbs(rel) || len(rel) > 2 && rel[:3] == "../" {
			continue
		}
		for _, fm := range s {
			if fm.info.FSType == fstype {
				mi := fm.info
				out = append(out, &mi)
			}
		}
	}
	return out, nil
}

func (m *fakeMounter) Dead(path string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	fm := m.top(path)
	return fm != nil && fm.dead
}

// Unmount takes the top mount off path. Unmounting anything but a mount
// of ours fails the test: the rules must never ask for it.
func (m *fakeMounter) Unmount(path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unmounts = append(m.unmounts, path)
	if m.unmountErr != nil {
		return m.unmountErr
	}
	fm := m.top(path)
	if fm == nil {
		return nil // EINVAL: not mounted any more
	}
	if !isOurs(&fm.info) {
		m.t.Errorf("the driver unmounted a mount not its own at %s: %+v", path, fm.info)
	}
	s := m.stacks[path]
	m.stacks[path] = s[:len(s)-1]
	return nil
}

// fakeBlocks is the size Statfs reports for a mount (in 4 KiB blocks).
const fakeBlocks = 3

func (m *fakeMounter) Statfs(path string) (unix.Statfs_t, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.top(path) == nil {
		return unix.Statfs_t{}, errors.New("fake statfs: nothing mounted")
	}
	return unix.Statfs_t{Blocks: fakeBlocks, Bsize: 4096, Files: 2}, nil
}

// fakeMaker is a VolumeMaker whose volumes are fake mounts of ours.
type fakeMaker struct {
	m     *fakeMounter
	mu    sync.Mutex
	calls []*fakeVolume // every volume made, in order
	// fail, if set, is what the next Mount, MountStatic or MountPayload
	// returns (once).
	fail error
	// quiesced counts Quiesce calls (the real one is process-wide).
	quiesced int
}

// fakeVolume is one volume made: what it was made with and what the
// driver did with it since.
type fakeVolume struct {
	mk      *fakeMaker
	kind    string // "Mount", "MountStatic" or "MountPayload"
	dir     string
	cfg     mounted.Config
	cache   *cache.Cache
	id      int
	done    chan struct{}
	goneOne sync.Once

	mu           sync.Mutex
	secrets      []*secret.Secret      // MountStatic's, then each Set
	payloads     []*projection.Payload // MountPayload's, then each SetPayload
	parts        []fakePart            // SetPart calls
	metas        [][]byte
	refreshes    int
	reports      []error // Report's calls
	resubscribed []backend.Identity
	unmounts     int
	abandoned    bool
}

func (mk *fakeMaker) make(kind, dir string, cfg mounted.Config) (*fakeVolume, error) {
	mk.mu.Lock()
	err := mk.fail
	mk.fail = nil
	mk.mu.Unlock()
	if err != nil {
		return nil, err
	}
	v := &fakeVolume{mk: mk, kind: kind, dir: dir, cfg: cfg, done: make(chan struct{})}
	v.id = mk.m.add(dir, fsType, cfg.FS.Name, "/", false)
	mk.mu.Lock()
	mk.calls = append(mk.calls, v)
	mk.mu.Unlock()
	return v, nil
}

func (mk *fakeMaker) Mount(_ context.Context, c *cache.Cache, dir string, cfg mounted.Config) (Volume, error) {
	v, err := mk.make("Mount", dir, cfg)
	if err != nil {
		return nil, err
	}
	v.cache = c
	return v, nil
}

func (mk *fakeMaker) MountStatic(dir string, cfg mounted.Config, s *secret.Secret) (Volume, error) {
	v, err := mk.make("MountStatic", dir, cfg)
	if err != nil {
		return nil, err
	}
	v.secrets = append(v.secrets, s)
	return v, nil
}

func (mk *fakeMaker) MountPayload(dir string, cfg mounted.Config, p *projection.Payload) (Volume, error) {
	v, err := mk.make("MountPayload", dir, cfg)
	if err != nil {
		return nil, err
	}
	v.payloads = append(v.payloads, p)
	return v, nil
}

// made lists the volumes made so far.
func (mk *fakeMaker) Quiesce() {
	mk.mu.Lock()
	defer mk.mu.Unlock()
	mk.quiesced++
}

func (mk *fakeMaker) made() []*fakeVolume {
	mk.mu.Lock()
	defer mk.mu.Unlock()
	return append([]*fakeVolume(nil), mk.calls...)
}

// only is the one volume made so far; anything else fails the test.
func (mk *fakeMaker) only(t *testing.T) *fakeVolume {
	t.Helper()
	vs := mk.made()
	if len(vs) != 1 {
		t.Fatalf("%d volumes made, want 1", len(vs))
	}
	return vs[0]
}

func (v *fakeVolume) Done() <-chan struct{} { return v.done }

func (v *fakeVolume) Set(s *secret.Secret) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.secrets = append(v.secrets, s)
	return nil
}

func (v *fakeVolume) SetPayload(p *projection.Payload) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.payloads = append(v.payloads, p)
	return nil
}

func (v *fakeVolume) SetPart(i int, p *projection.Payload) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.parts = append(v.parts, fakePart{i, p})
	return nil
}

// fakePart is a SetPart call.
type fakePart struct {
	i int
	p *projection.Payload
}

func (v *fakeVolume) ReportPart(_ int, err error) { v.Report(err) }

func (v *fakeVolume) Report(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reports = append(v.reports, err)
}

func (v *fakeVolume) SetMeta(meta []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.metas = append(v.metas, meta)
}

func (v *fakeVolume) Refresh(context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.refreshes++
	return nil
}

func (v *fakeVolume) Resubscribe(_ context.Context, _ *cache.Cache, id backend.Identity, meta []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.resubscribed = append(v.resubscribed, id)
	v.metas = append(v.metas, meta)
	return nil
}

// Unmount takes the volume's mount off its target, even from under
// another (the kernel's umount would take the topmost: the driver checks
// before that it is on top, and the test sees whether it did).
func (v *fakeVolume) Unmount() error {
	v.mu.Lock()
	v.unmounts++
	v.mu.Unlock()
	if err := v.mk.m.unmountError(); err != nil {
		return err
	}
	v.gone()
	return nil
}

func (v *fakeVolume) Abandon() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.abandoned = true
}

// Handover is a planned stop's last step: the fake serves nothing.
func (v *fakeVolume) Handover(time.Duration) bool { return true }

// gone ends the mount however it went (unmounted, or from outside):
// Done closes and OnUnmount runs, as mounted.Volume does.
func (v *fakeVolume) gone() {
	v.goneOne.Do(func() {
		v.mk.m.remove(v.dir, v.id)
		close(v.done)
		if v.cfg.OnUnmount != nil {
			v.cfg.OnUnmount()
		}
	})
}

func (m *fakeMounter) unmountError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unmountErr
}

// state reads a fake volume's record under its lock.
func (v *fakeVolume) state() (secrets int, payloads int, refreshes int, resubscribed []backend.Identity, unmounts int, abandoned bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.secrets), len(v.payloads), v.refreshes, append([]backend.Identity(nil), v.resubscribed...), v.unmounts, v.abandoned
}

func (v *fakeVolume) String() string { return fmt.Sprintf("%s at %s (mount %d)", v.kind, v.dir, v.id) }
