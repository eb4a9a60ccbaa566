package csi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/events"
	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/secret"
	"github.com/secretfs/secretfs/targetpath"
)

// This file is the storage side: it turns a validated publish into a live
// FUSE mount (through the Config's VolumeMaker) and keeps the bookkeeping.
// node.go calls it and maps errors.

// publishRequest is a NodePublishVolume after validation.
type publishRequest struct {
	volumeID string
	target   string // path.Name: the bookkeeping key
	path     targetpath.Path
	attrs    *Attributes
	id       backend.Identity  // the pod's service account and tokens, or zero
	secrets  map[string]string // the request's `secrets`; used only if attrs.Static or attrs.Provider
	context  map[string]string // volume_context as sent; used only if attrs.Provider
}

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
	created, err := d.prepareTarget(r.path)
	if err != nil {
		return err
	}
	mt, err := d.mount(ctx, r, key)
	if err != nil {
		// Leave the target as it was: only the folder made above goes.
		if created {
			_ = removeEmptyDir(r.target)
		}
		return mountError(err)
	}
	mt.mntID, _ = d.mounter.TopID(r.path)
	d.mounts.put(r.target, mt)
	d.log.Info("volume published", "volume", r.volumeID, "target", r.target, "secret", r.attrs.Spec.Ref(),
		"static", r.attrs.Static, "strategy", string(r.attrs.Strategy), "pod", r.attrs.Pod.Namespace+"/"+r.attrs.Pod.Name)
	return nil
}

// volumeConfig describes mt's volume at target for package mounted. The mount
// is forgotten when it goes, however it went (unmounted from outside, or
// a lazy unpublish finally released).
func (d *Driver) volumeConfig(target string, mt *mount, a *Attributes) mounted.Config {
	volumeID, key, id := mt.volumeID, mt.key, mt.id
	return mounted.Config{
		OnUnmount: func() { d.mounts.removeIf(target, mt) },
		Spec:      a.Spec,
		Identity:  id,
		Strategy:  a.Strategy,
		TTL:       a.TTL,
		// CSI volumes are root's, as kubelet's secret volumes are; fsGroup sets
		// the group and setgid folders. Pods run as other users, so the
		// mount allows them (the file modes decide).
		FS: fusefs.Options{UID: 0, GID: 0, FSGroup: a.Spec.FSGroup, Name: mountSource, AllowOther: true,
			SubPathUpdates: a.SubPathUpdates},
		Logger: d.log.With("volume", volumeID),
		Keeper: d.cfg.Keeper,
		Meta:   d.meta(volumeID, key, a, id),
		Report: d.reporter(target, volumeID, a),
	}
}

// reporter records the volume's refresh failures and recoveries as
// events on its Pod; nil (nothing recorded) without Config.Events or
// without pod info.
func (d *Driver) reporter(target, volumeID string, a *Attributes) mounted.Reporter {
	subject := "Secret " + a.Spec.Ref()
	switch {
	case a.Provider != nil:
		subject = "SecretProviderClass " + a.Pod.Namespace + "/" + a.Provider.Class
	case a.Static:
		subject = "the " + staticSecretName + " data"
	case len(a.Sources) > 0:
		subject = "one of its sources" // errors of a source name it
	}
	name := volumeID
	if _, vol, ok := kubeletTarget(target); ok {
		name = vol
	}
	pod := events.Pod{Namespace: a.Pod.Namespace, Name: a.Pod.Name, UID: a.Pod.UID}
	if v := d.cfg.Events.Volume(pod, name, subject); v != nil {
		return v
	}
	return nil
}

func (d *Driver) mount(ctx context.Context, r publishRequest, key string) (*mount, error) {
	a := r.attrs
	if a.Provider != nil {
		return d.mountProvider(ctx, r, key)
	}
	if len(a.Sources) > 0 {
		return d.mountSources(ctx, r, key)
	}
	mt := &mount{volumeID: r.volumeID, key: key, static: a.Static, id: r.id}
	cfg := d.volumeConfig(r.target, mt, a)
	var err error
	if a.Static {
		var s *secret.Secret
		if s, err = staticSecret(a, r.secrets); err != nil {
			return nil, err
		}
		mt.vol, err = d.volumes.MountStatic(r.target, cfg, s)
	} else {
		if d.cfg.Cache == nil {
			return nil, status.Error(codes.FailedPrecondition, "this plugin has no --source: only nodePublishSecretRef volumes work")
		}
		mt.vol, err = d.volumes.Mount(ctx, d.cfg.Cache, r.target, cfg)
	}
	if err != nil {
		return nil, err
	}
	return mt, nil
}

// republish refreshes a mounted volume (requiresRepublish, the Get
// strategy, new `secrets`). A failure keeps the last good version and
// still answers OK, so kubelet keeps the Pod running; mounted counts it.
func (d *Driver) republish(ctx context.Context, mt *mount, r publishRequest) {
	var err error
	if r.attrs.Provider != nil { // same attributes as mt's: the keys match
		d.republishProvider(ctx, mt, r)
		return
	}
	if len(r.attrs.Sources) > 0 {
		d.republishSources(ctx, mt, r)
		return
	}
	if mt.static {
		var s *secret.Secret
		if s, err = staticSecret(r.attrs, r.secrets); err == nil {
			err = mt.vol.Set(s)
		} else {
			metrics.RefreshErrors.WithLabelValues("invalid").Inc()
			mt.vol.Report(err)
		}
	} else if !reflect.DeepEqual(r.id, mt.id) {
		// kubelet may hand fresh pod tokens at a republish: they replace
		// this volume's in its cache entry (the old ones expire).
		err = mt.vol.Resubscribe(ctx, d.cfg.Cache, r.id, d.meta(r.volumeID, mt.key, r.attrs, r.id))
		if err == nil {
			mt.id = r.id
		}
	} else {
		err = mt.vol.Refresh(ctx)
	}
	if err != nil {
		d.log.Warn("republish kept the last good version", "volume", r.volumeID, "target", r.target, "err", err)
	}
}

// unpublish unmounts target (lazily if busy), removes the folder if it
// is empty and drops the volume. A target this process does not serve is
// releaseTarget's: left alone, or cleaned if an earlier process of ours
// left a dead mount there.
func (d *Driver) unpublish(ctx context.Context, volumeID string, p targetpath.Path) error {
	target := p.Name
	unlock, err := d.mounts.lock(ctx, target)
	if err != nil {
		return status.FromContextError(err).Err()
	}
	defer unlock()
	mt := d.mounts.get(target)
	if mt == nil {
		return d.releaseTarget(p)
	}
	if mt.volumeID != volumeID {
		// CSI: a volume not published at target is OK; leave the other.
		d.log.Warn("unpublish of a volume that is not at the target", "volume", volumeID, "target", target, "mounted", mt.volumeID)
		return nil
	}
	if err := d.onTop(mt, p); err != nil {
		return err
	}
	if m := mt.provider.Load(); m != nil {
		m.Close() // no more switches; the entry may go
	}
	mt.classes.close()
	if err := mt.vol.Unmount(); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	d.mounts.removeIf(target, mt)
	if err := d.clearDead(p); err != nil { // what the volume was mounted over
		return err
	}
	if err := removeEmptyDir(target); err != nil {
		return err
	}
	d.log.Info("volume unpublished", "volume", volumeID, "target", target)
	return nil
}

// onTop checks that the topmost mount at p is mt's volume: umount(2)
// takes the topmost, and one stacked over ours since is someone else's.
// The mount id noted at publish (or at takeover, mounts.put) answers
// without reading the mount table. Without one (the kernel does not say,
// or the mount at takeover was not ours on top), only a mount that is
// ours by type, source and root passes, never a workstation's secretfs.
func (d *Driver) onTop(mt *mount, p targetpath.Path) error {
	id, err := d.mounter.TopID(p)
	if err == nil && id != 0 && mt.mntID != 0 {
		if id == mt.mntID {
			return nil
		}
		return status.Errorf(codes.FailedPrecondition, "target %s: another mount lies over the volume; left as it is", p.Name)
	}
	mi, err := d.mounter.At(p)
	if err != nil {
		return status.Errorf(codes.Internal, "check target %s: %v", p.Name, err)
	}
	if mi != nil && (!isOurs(mi) || mt.mntID != 0 && uint64(mi.ID) != mt.mntID) {
		return status.Errorf(codes.FailedPrecondition, "target %s: a %q mount lies over the volume; left as it is", p.Name, mi.FSType)
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
		Sources    []SourceAttrs  `json:",omitempty"`
		// A layout is what a volume shows too; omitted when false, so
		// keys made before the attribute existed stay the same.
		SubPathUpdates bool `json:",omitempty"`
	}{a.Spec, a.Static, a.Base64Keys, a.Strategy, a.TTL, a.Provider, a.Sources, a.SubPathUpdates})
	return string(js)
}

// UnmountAll detaches every volume of this process. Only tests call it:
// at shutdown the plugin hands its volumes to the keeper (HandOver) or,
// without one, exits and leaves their dead mounts for kubelet to
// republish over or unpublish.
func (d *Driver) UnmountAll() {
	for target, mt := range d.mounts.all() {
		// The same rules as unpublish: a path the guard accepts, and
		// our volume the topmost mount there.
		p, err := d.guard.Check(target)
		if err == nil {
			err = d.onTop(mt, p)
		}
		if err != nil {
			d.log.Warn("left a volume under another mount", "target", target, "err", err)
			continue
		}
		if err := mt.vol.Unmount(); err != nil {
			d.log.Warn("unmount", "target", target, "err", err)
		}
		d.mounts.removeIf(target, mt)
		_ = d.clearDead(p)
		_ = removeEmptyDir(target)
	}
}
