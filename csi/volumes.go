package csi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mountutils "k8s.io/mount-utils"

	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/live"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/secret"
)

// This file is the storage side: it turns a validated publish into a live
// FUSE mount and keeps the bookkeeping. node.go calls it and maps errors.

// publishRequest is a NodePublishVolume after validation.
type publishRequest struct {
	volumeID string
	target   string // clean, absolute
	attrs    *Attributes
	token    string            // the pod's token, or ""
	secrets  map[string]string // the request's `secrets`; used only if attrs.Static or attrs.Provider
	context  map[string]string // volume_context as sent; used only if attrs.Provider
}

// fsName is the FUSE source and subtype of our mounts ("fuse.secretfs"),
// which is how stale mounts are recognised after a restart.
const fsName = "secretfs"

// publish mounts r.attrs at r.target, or refreshes the volume already
// there. Errors are gRPC statuses.
func (d *Driver) publish(ctx context.Context, r publishRequest) error {
	unlock, err := d.mounts.lock(ctx, r.target)
	if err != nil {
		return status.FromContextError(err).Err()
	}
	defer unlock()

	key := r.attrs.key()
	if mt := d.mounts.get(r.target); mt != nil {
		select {
		case <-mt.vol.Done():
			// Unmounted behind our back (by hand, or the server died):
			// forget it and mount again below.
			d.mounts.removeIf(r.target, mt)
		default:
			if mt.volumeID != r.volumeID {
				return status.Errorf(codes.AlreadyExists, "target %s already holds volume %q", r.target, mt.volumeID)
			}
			if mt.key != key {
				return status.Errorf(codes.AlreadyExists, "volume %q is already published at %s with other attributes", r.volumeID, r.target)
			}
			d.republish(ctx, mt, r)
			return nil
		}
	}
	if err := prepareTarget(r.target, d.log); err != nil {
		return err
	}
	mt, err := d.mount(ctx, r, key)
	if err != nil {
		// Leave the target as kubelet made it: an empty folder we made
		// goes (Remove fails harmlessly on anything else).
		_ = os.Remove(r.target)
		return mountError(err)
	}
	d.mounts.put(r.target, mt)
	d.log.Info("volume published", "volume", r.volumeID, "target", r.target, "secret", r.attrs.Spec.Ref(),
		"static", r.attrs.Static, "strategy", string(r.attrs.Strategy), "pod", r.attrs.Pod.Namespace+"/"+r.attrs.Pod.Name)
	return nil
}

// liveConfig describes mt's volume at target for package live. The mount
// is forgotten when it goes, however it went (unmounted from outside, or
// a lazy unpublish finally released).
func (d *Driver) liveConfig(target string, mt *mount, a *Attributes) live.Config {
	volumeID, key, token := mt.volumeID, mt.key, mt.token
	return live.Config{
		OnUnmount: func() { d.mounts.removeIf(target, mt) },
		Spec:      a.Spec,
		Token:     token,
		Strategy:  a.Strategy,
		TTL:       a.TTL,
		// CSI volumes are root's, as kubelet's (SPEC §2); fsGroup sets
		// the group and setgid folders.
		FS:     fusefs.Options{UID: 0, GID: 0, FSGroup: a.Spec.FSGroup, Name: fsName},
		Logger: d.log.With("volume", volumeID),
		Keeper: d.cfg.Keeper,
		Meta:   d.meta(volumeID, key, a, token),
	}
}

func (d *Driver) mount(ctx context.Context, r publishRequest, key string) (*mount, error) {
	a := r.attrs
	if a.Provider != nil {
		return d.mountProvider(ctx, r, key)
	}
	mt := &mount{volumeID: r.volumeID, key: key, static: a.Static, token: r.token}
	cfg := d.liveConfig(r.target, mt, a)
	var err error
	if a.Static {
		var s *secret.Secret
		if s, err = staticSecret(a, r.secrets); err != nil {
			return nil, err
		}
		mt.vol, err = live.MountStatic(r.target, cfg, s)
	} else {
		if d.cfg.Cache == nil {
			return nil, status.Error(codes.FailedPrecondition, "this plugin has no --source: only nodePublishSecretRef volumes work")
		}
		mt.vol, err = live.Mount(ctx, d.cfg.Cache, r.target, cfg)
	}
	if err != nil {
		return nil, err
	}
	return mt, nil
}

// republish refreshes a mounted volume (requiresRepublish, the Get
// strategy, new `secrets`). A failure keeps the last good version and
// still answers OK (SPEC §4); live counts it.
func (d *Driver) republish(ctx context.Context, mt *mount, r publishRequest) {
	var err error
	if r.attrs.Provider != nil { // same attributes as mt's: the keys match
		d.republishProvider(ctx, mt, r)
		return
	}
	if mt.static {
		var s *secret.Secret
		if s, err = staticSecret(r.attrs, r.secrets); err == nil {
			err = mt.vol.Set(s)
		} else {
			metrics.RefreshErrors.WithLabelValues("invalid").Inc()
		}
	} else if r.token != mt.token {
		// kubelet hands a fresh pod token at each republish; read with
		// it from now on (the old one expires).
		err = mt.vol.Resubscribe(ctx, d.cfg.Cache, r.token, d.meta(r.volumeID, mt.key, r.attrs, r.token))
		if err == nil {
			mt.token = r.token
		}
	} else {
		err = mt.vol.Refresh(ctx)
	}
	if err != nil {
		d.log.Warn("republish kept the last good version", "volume", r.volumeID, "target", r.target, "err", err)
	}
}

// unpublish unmounts target (lazily if busy), removes the folder and drops
// the volume. An unknown target is fine, but a dead mount there (an
// earlier process's) is cleaned.
func (d *Driver) unpublish(ctx context.Context, volumeID, target string) error {
	unlock, err := d.mounts.lock(ctx, target)
	if err != nil {
		return status.FromContextError(err).Err()
	}
	defer unlock()
	mt := d.mounts.get(target)
	if mt == nil {
		if err := mountutils.CleanupMountPoint(target, unmounter(), false); err != nil {
			return status.Errorf(codes.Internal, "clean up %s: %v", target, err)
		}
		return nil
	}
	if mt.volumeID != volumeID {
		// CSI: a volume not published at target is OK; leave the other.
		d.log.Warn("unpublish of a volume that is not at the target", "volume", volumeID, "target", target, "mounted", mt.volumeID)
		return nil
	}
	if m := mt.provider.Load(); m != nil {
		m.Close() // no more switches; the entry may go
	}
	if err := mt.vol.Unmount(); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	d.mounts.removeIf(target, mt)
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return status.Errorf(codes.Internal, "remove target: %v", err)
	}
	d.log.Info("volume unpublished", "volume", volumeID, "target", target)
	return nil
}

// prepareTarget makes the target folder. kubelet creates only its parent.
// A dead FUSE mount there (ENOTCONN after an earlier process died) is
// cleaned first; a live mount that is not ours is refused.
func prepareTarget(target string, log interface{ Info(string, ...any) }) error {
	_, err := os.Stat(target)
	switch {
	case err == nil:
		notMnt, err := unmounter().IsLikelyNotMountPoint(target)
		if err != nil {
			return status.Errorf(codes.Internal, "check target %s: %v", target, err)
		}
		if !notMnt {
			return status.Errorf(codes.AlreadyExists, "target %s is already a mount point not made by this plugin", target)
		}
		return nil
	case mountutils.IsCorruptedMnt(err):
		log.Info("cleaning a dead mount at the target", "target", target, "err", err)
		if err := mountutils.CleanupMountPoint(target, unmounter(), false); err != nil {
			return status.Errorf(codes.Internal, "clean dead mount at %s: %v", target, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return status.Errorf(codes.Internal, "check target: %v", err)
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return status.Errorf(codes.Internal, "create target: %v", err)
	}
	return nil
}

// staticSecret builds the Secret of a volume fed by the request's
// `secrets` (nodePublishSecretRef): kubelet hands over decoded values,
// except that a binary value cannot cross CSI's UTF-8 strings, so keys in
// base64Keys carry base64.
func staticSecret(a *Attributes, secrets map[string]string) (*secret.Secret, error) {
	if len(secrets) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "volume attribute %s is missing and the request carries no nodePublishSecretRef data", attrSecretName)
	}
	data := make(map[string][]byte, len(secrets))
	for k, v := range secrets {
		data[k] = []byte(v)
	}
	for _, k := range a.Base64Keys {
		v, ok := secrets[k]
		if !ok {
			continue // a missing key is the business of items/optional
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, &secret.InvalidError{Origin: staticSecretName, Field: fmt.Sprintf("key %q (listed in %s)", k, attrBase64Keys), Reason: "not valid base64"}
		}
		data[k] = b
	}
	return secret.FromData(a.Spec.Namespace, "", "Opaque", data, staticSecretName)
}

// key identifies what a volume shows, to tell a republish from a clash.
func (a *Attributes) key() string {
	js, _ := json.Marshal(struct {
		Spec       any
		Static     bool
		Base64Keys []string
		Strategy   cache.Strategy
		TTL        time.Duration
		Provider   *ProviderAttrs `json:",omitempty"`
	}{a.Spec, a.Static, a.Base64Keys, a.Strategy, a.TTL, a.Provider})
	return string(js)
}

// Abandon stops following every volume without unmounting: the keeper
// holds them for the next process (a planned restart or upgrade).
func (d *Driver) Abandon() {
	for _, mt := range d.mounts.all() {
		mt.vol.Abandon()
	}
}

// UnmountAll detaches every volume of this process (tests, and a
// shutdown that must not leave mounts behind).
func (d *Driver) UnmountAll() {
	for target, mt := range d.mounts.all() {
		if err := mt.vol.Unmount(); err != nil {
			d.log.Warn("unmount", "target", target, "err", err)
		}
		d.mounts.removeIf(target, mt)
		_ = os.Remove(target)
	}
}
