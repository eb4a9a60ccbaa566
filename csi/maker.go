package csi

import (
	"context"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secret"
)

// VolumeMaker mounts the volume of a publish at its target, once the
// target rules have passed: the storage side, as csi-lib's storage
// interface is to its node server. The default is package mounted
// (mountedMaker); tests give a fake that records the calls and mounts
// nothing, so publish, republish and unpublish run without root.
type VolumeMaker interface {
	// Mount shows a Secret read through c and follows it (mounted.Mount).
	Mount(ctx context.Context, c *cache.Cache, dir string, cfg mounted.Config) (Volume, error)
	// MountStatic shows s, replaced with Set (mounted.MountStatic).
	MountStatic(dir string, cfg mounted.Config, s *secret.Secret) (Volume, error)
	// MountPayload shows a provider's files, replaced with SetPayload
	// (mounted.MountPayload).
	MountPayload(dir string, cfg mounted.Config, p *projection.Payload) (Volume, error)
	// Quiesce stops every volume of this process from writing FUSE
	// notices itself, once it is stopping (fusefs.Quiesce). It is
	// process-wide, so a fake must not call it: a test process that
	// quiesced would leave later tests' mounts without notices.
	Quiesce()
}

// Volume is what the driver does with a mounted volume
// (*mounted.Volume).
type Volume interface {
	// Done is closed once the mount is gone, however it went.
	Done() <-chan struct{}
	Set(s *secret.Secret) error
	SetPayload(p *projection.Payload) error
	// SetPart replaces the files of source i of a volume of several
	// sources (a secretProviderClass source).
	SetPart(i int, p *projection.Payload) error
	// ReportPart tells how a provider call of source i went (a good
	// one may leave the files as they were, so no SetPart).
	ReportPart(i int, err error)
	SetMeta(meta []byte)
	Refresh(ctx context.Context) error
	// Report tells the volume's Reporter how a refresh made outside the
	// volume went (a provider's call, a republish's `secrets`).
	Report(err error)
	Resubscribe(ctx context.Context, c *cache.Cache, id backend.Identity, meta []byte) error
	// Unmount detaches the mount (lazily when busy).
	Unmount() error
	// Abandon stops following without unmounting (a keeper holds it).
	Abandon()
	// Handover stops serving after answering every request read (a
	// planned stop; the keeper holds the mount).
	Handover(wait time.Duration) bool
}

var _ Volume = (*mounted.Volume)(nil)

// mountedMaker is the VolumeMaker of package mounted. It returns a nil
// Volume, never a nil *mounted.Volume in one, with an error.
type mountedMaker struct{}

func (mountedMaker) Mount(ctx context.Context, c *cache.Cache, dir string, cfg mounted.Config) (Volume, error) {
	return volume(mounted.Mount(ctx, c, dir, cfg))
}

func (mountedMaker) MountStatic(dir string, cfg mounted.Config, s *secret.Secret) (Volume, error) {
	return volume(mounted.MountStatic(dir, cfg, s))
}

func (mountedMaker) MountPayload(dir string, cfg mounted.Config, p *projection.Payload) (Volume, error) {
	return volume(mounted.MountPayload(dir, cfg, p))
}

func (mountedMaker) Quiesce() { fusefs.Quiesce() }

func volume(v *mounted.Volume, err error) (Volume, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}
