package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/keeper"
	"github.com/secretfs/secretfs/mounted"
)

// kept is what the keeper holds about a published volume besides its
// versions: enough for the next plugin process to serve and refresh it.
// It stays in memory (the keeper's); the pod's tokens are needed to go on
// reading with the pod's identity until kubelet republishes fresh ones.
// It is JSON, which the keeper never reads: as with the keeper's own
// blobs (keeper/wire), fields are only added and the old ones still
// written, so a plugin of the release before or after reads it. Token is
// what a release before Identity reads (one token, no account).
type kept struct {
	VolumeID string
	Key      string
	Attrs    Attributes
	Token    string `json:",omitempty"`
	Identity backend.Identity
	// Context and Secrets are a provider volume's request, to join its
	// entry again (provider.go).
	Context map[string]string `json:",omitempty"`
	Secrets map[string]string `json:",omitempty"`
}

func (d *Driver) meta(volumeID, key string, a *Attributes, id backend.Identity) []byte {
	if d.cfg.Keeper == nil {
		return nil
	}
	k := kept{VolumeID: volumeID, Key: key, Attrs: *a, Identity: id}
	if len(id.Tokens) > 0 {
		k.Token = id.Tokens[0].Value // for a release before Identity
	}
	b, _ := json.Marshal(k)
	return b
}

// Resume takes back every mount the keeper holds for this driver (records
// of kind csi; the keeper keeps other kinds to itself), before
// anything else looks at the targets (a held mount whose server is gone
// blocks every request until it is served again). It returns how many
// volumes it serves again. A record whose target the rules refuse is left
// held; a volume that cannot be taken back is forgotten by the keeper, so
// its connection ends and CleanupStale removes the dead mount for
// kubelet's next republish to mount afresh. The takeover of one mount,
// step by step, is written at mounted.Resume.
func (d *Driver) Resume(ctx context.Context) (int, error) {
	if d.cfg.Keeper == nil {
		return 0, nil
	}
	entries, err := d.cfg.Keeper.List(ctx, ResumeWait)
	if err != nil {
		return 0, err
	}
	// Every mount is served again first (restore), then each follows its
	// source (follow): readers wait only until their own mount is served,
	// not for the sources of all the others. Both concurrently.
	var taken []*takenOver
	var mu sync.Mutex
	each(len(entries), func(i int) {
		e := entries[i]
		// A record names its target; it is trusted no more than a
		// request is: the path must pass the guard. Its parent is
		// checked, not the path itself: a held mount that nobody serves
		// yet would make an lstat of it wait forever.
		if filepath.Clean(e.ID) != e.ID || filepath.Dir(e.ID) == e.ID {
			d.log.Error("keeper record with a target the rules refuse: left held", "target", e.ID)
			e.Close()
			return
		}
		if _, err := d.guard.Check(filepath.Dir(e.ID)); err != nil {
			d.log.Error("keeper record with a target the rules refuse: left held", "err", err)
			e.Close()
			return
		}
		to, err := d.restore(e)
		if err != nil {
			// Never unmounted from here: forgetting the record closes
			// the keeper's descriptor, ours is closed, so the kernel
			// aborts the connection and CleanupStale (which runs next
			// and follows the target rules) leaves the dead mount to
			// kubelet's next republish.
			d.log.Error("could not take a mount back; kubelet's republish mounts it afresh", "target", e.ID, "err", err)
			d.cfg.Keeper.Forget(e.ID)
			return
		}
		mu.Lock()
		taken = append(taken, to)
		mu.Unlock()
	})
	each(len(taken), func(i int) { d.follow(ctx, taken[i]) })
	return len(taken), nil
}

// each runs f(0..n-1), resumeWorkers at a time, and waits for them.
func each(n int, f func(int)) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, resumeWorkers)
	for i := range n {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// resumeWorkers bounds the mounts taken back at once.
const resumeWorkers = 8

// ResumeWait is how long Resume waits for a keeper to list its records:
// in a DaemonSet the keeper's Pod may start beside the plugin's.
const ResumeWait = 10 * time.Second

// takenOver is a mount served again by restore, for follow.
type takenOver struct {
	id  string
	k   kept
	mt  *mount
	vol *mounted.Volume
}

// restore serves a held mount again (mounted.Restore), from its record.
func (d *Driver) restore(e keeper.Entry) (*takenOver, error) {
	if e.Err != nil {
		e.Close()
		return nil, e.Err
	}
	var k kept
	if err := json.Unmarshal(e.Meta, &k); err != nil {
		e.Close()
		return nil, fmt.Errorf("keeper record: %w", err)
	}
	if k.Attrs.Provider != nil {
		return d.restoreProvider(e, k)
	}
	if k.Identity.Own() && k.Token != "" {
		k.Identity = backend.Identity{Tokens: []backend.Token{{Value: k.Token}}}
	}
	if len(k.Attrs.Sources) > 0 {
		return d.restoreSources(e, k)
	}
	mt := &mount{volumeID: k.VolumeID, key: k.Key, static: k.Attrs.Static, id: k.Identity}
	vol, err := mounted.Restore(e, d.volumeConfig(e.ID, mt, &k.Attrs))
	if err != nil {
		return nil, err
	}
	mt.vol = vol
	return &takenOver{id: e.ID, k: k, mt: mt, vol: vol}, nil
}

// follow has a restored mount follow its source again and be served by
// this driver from now on.
func (d *Driver) follow(ctx context.Context, t *takenOver) {
	if t.k.Attrs.Provider != nil {
		d.followProvider(ctx, t)
		return
	}
	if len(t.k.Attrs.Sources) > 0 {
		d.followSources(ctx, t)
		return
	}
	c := d.cfg.Cache
	if t.k.Attrs.Static {
		c = nil // fed by republish, shown as last published until then
	}
	t.vol.Follow(ctx, c)
	d.mounts.put(t.id, t.mt)
	d.log.Info("volume taken over", "volume", t.k.VolumeID, "target", t.id)
}

// Serves reports whether this process serves a volume at target.
func (d *Driver) Serves(target string) bool { return d.mounts.get(target) != nil }

// HandOver is a planned stop with a keeper (SIGTERM, an upgrade), in
// order, so that no mount is lost and no request is left unanswered:
//
//  1. stop following every volume (mounted.Volume.Abandon);
//  2. wait, up to ctx, until a keeper holds every mount, even a keeper
//     that is stopping itself (keeper.Link.Stop, which also tells the
//     keeper that this server no longer counts as a holder);
//  3. stop writing notices from this process and wait for those under
//     way, while the mounts are still served (VolumeMaker.Quiesce:
//     the exit hazard in fusefs.Notice);
//  4. stop serving each mount once it has answered every request it read
//     (mounted.Volume.Handover), which matters on kernels without
//     FUSE_NOTIFY_RESEND.
//
// The next process takes the mounts over (Resume).
func (d *Driver) HandOver(ctx context.Context) {
	all := d.mounts.all()
	for _, mt := range all {
		mt.vol.Abandon()
	}
	if d.cfg.Keeper == nil {
		d.log.Warn("stopping without a keeper: the mounts end with this process")
	} else if !d.cfg.Keeper.Stop(ctx) {
		d.log.Error("stopping with mounts no keeper holds: they end with this process", "unprotected", d.cfg.Keeper.Unprotected())
	}
	d.volumes.Quiesce()
	var wg sync.WaitGroup
	for target, mt := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !mt.vol.Handover(2 * time.Second) {
				d.log.Warn("mount still serving a request at the handover", "target", target)
			}
		}()
	}
	wg.Wait()
	d.log.Info("mounts handed over to the keeper", "volumes", len(all))
}
