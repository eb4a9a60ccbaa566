package csi

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/backend/provider"
)

// mount is one published volume.
type mount struct {
	volumeID string
	// key is what the volume shows, from its attributes (spec, strategy,
	// fsGroup; never secrets or tokens): a republish must show the same.
	key    string
	static bool             // fed from the request's `secrets`, updated with Set
	id     backend.Identity // the pod's service account and tokens (zero: our own identity)
	vol    Volume
	// mntID is the kernel's id of the mount made at publish (0: unknown,
	// e.g. taken back from the keeper); unpublish checks with it that the
	// mount at the target is still ours.
	mntID uint64
	// provider is the volume's place in its shared provider entry, for
	// a secretProviderClass volume (atomic: the unmount callback reads it).
	provider atomic.Pointer[provider.Member]
	// classes are the secretProviderClass sources of a volume of
	// several sources (sources_mount.go); nil for other volumes.
	classes *classSources
}

// mounts is the bookkeeping target → mount. Each target has its own lock,
// so publishes of different targets run in parallel while two calls for
// one target (kubelet retries, republish racing unpublish) are ordered.
type mounts struct {
	mu       sync.Mutex
	byTarget map[string]*mount
	locks    map[string]*targetLock
	// ownID is the id of our mount on top at a target, 0 if none
	// (Driver.ownMountID).
	ownID func(target string) uint64
}

type targetLock struct {
	ch   chan struct{} // a one-slot semaphore, so waiting honours ctx
	refs int
}

func newMounts(ownID func(target string) uint64) *mounts {
	return &mounts{byTarget: map[string]*mount{}, locks: map[string]*targetLock{}, ownID: ownID}
}

// lock takes the target's lock; the returned func releases it. It fails
// only if ctx ends first (kubelet gave up; it will call again).
func (m *mounts) lock(ctx context.Context, target string) (func(), error) {
	m.mu.Lock()
	l := m.locks[target]
	if l == nil {
		l = &targetLock{ch: make(chan struct{}, 1)}
		m.locks[target] = l
	}
	l.refs++
	m.mu.Unlock()
	release := func() {
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.locks, target)
		}
		m.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

func (m *mounts) get(target string) *mount {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byTarget[target]
}

// put records mt at target. A mount taken back from the keeper comes
// without the id publish notes: it is noted here, if the topmost mount at
// target is ours, so that unpublish (onTop) can tell it from a secretfs
// mount stacked over it later. The volume is served by now, so the statx
// does not wait.
func (m *mounts) put(target string, mt *mount) {
	if mt.mntID == 0 {
		mt.mntID = m.ownID(target)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byTarget[target] = mt
}

// removeIf forgets target only if it still holds mt: a watcher of a dead
// mount must not drop the volume published there after it.
func (m *mounts) removeIf(target string, mt *mount) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byTarget[target] == mt {
		delete(m.byTarget, target)
	}
}

// all lists the current mounts (shutdown in tests, metrics).
func (m *mounts) all() map[string]*mount {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*mount, len(m.byTarget))
	for t, mt := range m.byTarget {
		out[t] = mt
	}
	return out
}
