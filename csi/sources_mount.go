package csi

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretfs/secretfs/backend/provider"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/keeper"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
)

// This file serves volumes of several sources (attribute `sources`):
// package mounted follows the Secrets through the cache and merges
// them; each secretProviderClass source joins its shared provider entry
// here, as a provider volume does (provider.go), and feeds its files to
// the volume (mounted.Volume.SetPart).

// classSources are a volume's places in the provider entries of its
// secretProviderClass sources. Until the volume is mounted, the files
// they give are kept here (first), by source index.
type classSources struct {
	mu      sync.Mutex
	vol     Volume
	first   map[int]*projection.Payload
	members map[int]*provider.Member
}

func newClassSources() *classSources {
	return &classSources{first: map[int]*projection.Payload{}, members: map[int]*provider.Member{}}
}

// set takes source i's files: kept until the volume is mounted, then
// passed to it.
func (c *classSources) set(i int, files *projection.Payload) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vol == nil {
		c.first[i] = files
		return nil
	}
	return c.vol.SetPart(i, files)
}

// report tells the volume how a provider call of source i went; before
// the mount there is nothing to tell (a failed first call refuses it).
func (c *classSources) report(i int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vol != nil {
		c.vol.ReportPart(i, err)
	}
}

// attach passes the files to vol from now on, and those given since the
// mount took them (a switch only if they differ).
func (c *classSources) attach(vol Volume) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.vol = vol
	for i, f := range c.first {
		_ = vol.SetPart(i, f)
	}
	clear(c.first)
}

// close leaves every provider entry (no more files; an entry may go).
func (c *classSources) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	ms := c.members
	c.members = map[int]*provider.Member{}
	c.mu.Unlock()
	for _, m := range ms {
		m.Close()
	}
}

// mountSources mounts a volume of several sources: each class source
// joins its provider entry first (a failed call fails the publish, as for
// a provider volume), then package mounted reads the Secrets, merges
// everything and mounts it.
func (d *Driver) mountSources(ctx context.Context, r publishRequest, key string) (*mount, error) {
	a := r.attrs
	if d.cfg.Cache == nil && len(a.Sources) > countClasses(a) {
		return nil, status.Error(codes.FailedPrecondition, "this plugin has no --source: only nodePublishSecretRef volumes work")
	}
	if d.cfg.Providers == nil && a.hasClasses() {
		return nil, status.Error(codes.FailedPrecondition, "this plugin has no --source to read SecretProviderClasses from")
	}
	mt := &mount{volumeID: r.volumeID, key: key, id: r.id, classes: newClassSources()}
	cfg := d.sourcesConfig(r, mt)
	if err := d.joinClasses(ctx, r, mt); err != nil {
		mt.classes.close()
		return nil, err
	}
	mt.classes.mu.Lock()
	for i, f := range mt.classes.first {
		cfg.Sources[i].Files = f
	}
	mt.classes.mu.Unlock()
	vol, err := d.volumes.Mount(ctx, d.cfg.Cache, r.target, cfg)
	if err != nil {
		mt.classes.close()
		return nil, err
	}
	mt.vol = vol
	mt.classes.attach(vol)
	return mt, nil
}

func countClasses(a *Attributes) int {
	n := 0
	for _, s := range a.Sources {
		if s.Class != "" {
			n++
		}
	}
	return n
}

// sourcesConfig is volumeConfig for a volume of several sources: the
// sources for package mounted, and what the keeper holds (the request's
// volume_context and secrets too when a class needs them to join its
// entry again). The volume leaves its provider entries once the mount is
// gone, however it went.
func (d *Driver) sourcesConfig(r publishRequest, mt *mount) mounted.Config {
	cfg := d.volumeConfig(r.target, mt, r.attrs)
	cfg.Sources = r.attrs.mountedSources()
	cfg.Meta = d.sourcesMeta(r, mt.key)
	gone := cfg.OnUnmount
	cfg.OnUnmount = func() {
		mt.classes.close()
		gone()
	}
	return cfg
}

func (d *Driver) sourcesMeta(r publishRequest, key string) []byte {
	if d.cfg.Keeper == nil {
		return nil
	}
	k := kept{VolumeID: r.volumeID, Key: key, Attrs: *r.attrs, Identity: r.id}
	if r.attrs.hasClasses() {
		k.Context, k.Secrets = r.context, r.secrets
	}
	b, _ := json.Marshal(k)
	return b
}

// classRequest is what source i (a class) of r's volume asks its
// provider: as a provider volume of that class with the volume's
// defaultMode (Get if the volume's strategy is Get, else Cache).
func classRequest(r publishRequest, class string) *provider.Request {
	a := r.attrs
	mode := int32(projection.DefaultMode)
	if a.Spec.DefaultMode != nil {
		mode = *a.Spec.DefaultMode
	}
	st := provider.StrategyCache
	if a.Strategy == cache.StrategyGet {
		st = provider.StrategyGet
	}
	return &provider.Request{
		Namespace: a.Pod.Namespace, Class: class, ServiceAccount: a.Pod.ServiceAccount,
		Context: r.context, Secrets: r.secrets, Target: r.target,
		DefaultMode: mode, Strategy: st, TTL: a.TTL,
	}
}

// joinClasses joins the provider entry of every class source not yet a
// member (all at a publish; after a takeover, those the provider did not
// answer yet).
func (d *Driver) joinClasses(ctx context.Context, r publishRequest, mt *mount) error {
	fsGroup := r.attrs.Spec.FSGroup
	c := mt.classes
	for i, s := range r.attrs.Sources {
		c.mu.Lock()
		_, joined := c.members[i]
		c.mu.Unlock()
		if s.Class == "" || joined {
			continue
		}
		m, err := d.cfg.Providers.Join(ctx, classRequest(r, s.Class),
			func(f *provider.Files) error { return c.set(i, f.Payload(fsGroup)) },
			func(f *provider.Files) {
				if err := c.set(i, f.Payload(fsGroup)); err != nil {
					d.log.Warn("provider source keeps its last good files", "volume", r.volumeID, "target", r.target, "err", err)
				}
			},
			func(err error) { c.report(i, err) })
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.members[i] = m
		c.mu.Unlock()
	}
	return nil
}

// republishSources refreshes every source of a republished volume: the
// classes first (their new files wait in the volume's window), then the
// Secrets, whose refresh switches once with everything. A failure keeps
// the last good version and answers OK.
func (d *Driver) republishSources(ctx context.Context, mt *mount, r publishRequest) {
	var errs []error
	mt.classes.mu.Lock()
	members := make(map[int]*provider.Member, len(mt.classes.members))
	for i, m := range mt.classes.members {
		members[i] = m
	}
	mt.classes.mu.Unlock()
	for i, m := range members {
		errs = append(errs, m.Refresh(ctx, classRequest(r, r.attrs.Sources[i].Class)))
	}
	if r.attrs.hasClasses() {
		errs = append(errs, d.joinClasses(ctx, r, mt)) // taken over while a provider was away
	}
	meta := d.sourcesMeta(r, mt.key)
	if !reflect.DeepEqual(r.id, mt.id) {
		err := mt.vol.Resubscribe(ctx, d.cfg.Cache, r.id, meta)
		if err == nil {
			mt.id = r.id
		}
		errs = append(errs, err)
	} else {
		errs = append(errs, mt.vol.Refresh(ctx))
	}
	if meta != nil {
		mt.vol.SetMeta(meta)
	}
	if err := errors.Join(errs...); err != nil {
		d.log.Warn("republish kept the last good version", "volume", r.volumeID, "target", r.target, "err", err)
	}
}

// restoreSources serves a held volume of several sources again.
func (d *Driver) restoreSources(e keeper.Entry, k kept) (*takenOver, error) {
	if k.Attrs.hasClasses() && d.cfg.Providers == nil {
		e.Close()
		return nil, errors.New("a volume with secretProviderClass sources, and this plugin serves no providers")
	}
	mt := &mount{volumeID: k.VolumeID, key: k.Key, id: k.Identity, classes: newClassSources()}
	vol, err := mounted.Restore(e, d.sourcesConfig(k.request(e.ID), mt))
	if err != nil {
		return nil, err
	}
	mt.vol = vol
	mt.classes.attach(vol)
	return &takenOver{id: e.ID, k: k, mt: mt, vol: vol}, nil
}

// followSources has a restored volume of several sources follow them
// again: its Secrets through the cache, its classes through their
// entries (an unreachable provider leaves its old files until the next
// republish joins).
func (d *Driver) followSources(ctx context.Context, t *takenOver) {
	t.vol.Follow(ctx, d.cfg.Cache)
	d.mounts.put(t.id, t.mt)
	if err := d.joinClasses(ctx, t.k.request(t.id), t.mt); err != nil {
		d.log.Warn("provider unreachable at takeover; its source shows its previous files until the next republish", "volume", t.k.VolumeID, "target", t.id, "err", err)
	}
	d.log.Info("volume taken over", "volume", t.k.VolumeID, "target", t.id, "sources", len(t.k.Attrs.Sources))
}

// request rebuilds the publish of a kept volume at target.
func (k *kept) request(target string) publishRequest {
	return publishRequest{volumeID: k.VolumeID, target: target, attrs: &k.Attrs, id: k.Identity, context: k.Context, secrets: k.Secrets}
}
