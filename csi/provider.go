package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/secretfs/secretfs/backend/provider"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/keeper"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
)

// This file serves secretProviderClass volumes: files from a
// Secrets Store CSI provider, through backend/provider's shared entries,
// mounted and switched by package mounted like any other volume (mounted.MountPayload).

// ProviderAttrs is what a provider volume adds to Attributes.
type ProviderAttrs struct {
	Class       string
	DefaultMode int32
}

// providerAttrs are the attributes a provider volume accepts besides
// kubelet's pod info keys. items, optional, secretNamespace and
// base64Keys describe a Secret and mean nothing here.
var providerAttrs = []string{attrSecretProviderClass, attrDefaultMode, attrChangeDetection, attrTTL, attrSubPathUpdates}

// parseProviderAttributes is ParseAttributes for a volume with
// secretProviderClass. The class is always the pod's namespace's.
func parseProviderAttributes(vc map[string]string, mountGroup string) (*Attributes, error) {
	for _, k := range slices.Sorted(maps.Keys(vc)) {
		switch {
		case k == attrSecretName:
			return nil, fmt.Errorf("volume attributes %s and %s: a volume shows a Secret or a provider's files, not both", attrSecretName, attrSecretProviderClass)
		case strings.HasPrefix(k, podInfoPrefix), slices.Contains(providerAttrs, k):
		case slices.Contains(knownAttrs, k):
			return nil, fmt.Errorf("volume attribute %s: does not apply with %s (allowed: %s)", k, attrSecretProviderClass, strings.Join(providerAttrs, ", "))
		default:
			return nil, fmt.Errorf("volume attribute %s is unknown (known with %s: %s, and keys under %s)", shortKey(k), attrSecretProviderClass, strings.Join(providerAttrs, ", "), podInfoPrefix)
		}
	}
	class := vc[attrSecretProviderClass]
	if errs := validation.IsDNS1123Subdomain(class); len(errs) > 0 {
		return nil, fmt.Errorf("volume attribute %s: not a valid object name: %s", attrSecretProviderClass, errs[0])
	}
	a := &Attributes{Pod: PodInfo{
		Name: vc[podNameKey], Namespace: vc[podNamespaceKey], UID: vc[podUIDKey],
		ServiceAccount: vc[podSAKey], Tokens: vc[tokensKey],
	}}
	if a.Pod.Namespace == "" {
		return nil, fmt.Errorf("volume attribute %s is missing: a %s is read from the pod's namespace, so the CSIDriver needs podInfoOnMount: true", podNamespaceKey, attrSecretProviderClass)
	}
	p := &ProviderAttrs{Class: class, DefaultMode: projection.DefaultMode}
	if v, ok := vc[attrDefaultMode]; ok {
		m, err := parseMode(v)
		if err != nil {
			return nil, fmt.Errorf("volume attribute %s: %w", attrDefaultMode, err)
		}
		p.DefaultMode = m
	}
	switch v := vc[attrChangeDetection]; {
	case v == "" || strings.EqualFold(v, string(cache.StrategyCache)):
		a.Strategy = cache.StrategyCache
	case strings.EqualFold(v, string(cache.StrategyGet)):
		a.Strategy = cache.StrategyGet
	case strings.EqualFold(v, string(cache.StrategyWatch)):
		return nil, fmt.Errorf("volume attribute %s: Watch is not possible with %s (a provider cannot be watched); use Cache or Get", attrChangeDetection, attrSecretProviderClass)
	default:
		return nil, fmt.Errorf("volume attribute %s: unknown change detection strategy (want Cache or Get)", attrChangeDetection)
	}
	var err error
	if v, ok := vc[attrTTL]; ok {
		if a.TTL, err = parseTTL(v, "2m"); err != nil {
			return nil, err
		}
	}
	if a.Spec.FSGroup, err = parseMountGroup(mountGroup); err != nil {
		return nil, err
	}
	// Spec names the volume in logs ("ns/class") and carries fsGroup and
	// the default mode to the filesystem; it is never projected.
	a.Spec.Namespace, a.Spec.SecretName, a.Spec.DefaultMode = a.Pod.Namespace, class, &p.DefaultMode
	a.Provider = p
	return a, nil
}

// providerRequest is what the volume of r asks its provider: volume_context
// and secrets as kubelet sent them, as the driver forwards them.
func providerRequest(r publishRequest) *provider.Request {
	a := r.attrs
	return &provider.Request{
		Namespace:      a.Pod.Namespace,
		Class:          a.Provider.Class,
		ServiceAccount: a.Pod.ServiceAccount,
		Context:        r.context,
		Secrets:        r.secrets,
		Target:         r.target,
		DefaultMode:    a.Provider.DefaultMode,
		Strategy:       provider.Strategy(a.Strategy),
		TTL:            a.TTL,
	}
}

// mountProvider joins the volume's shared entry and mounts the files it
// holds (asking the provider first unless a Cache entry's files are
// fresh).
func (d *Driver) mountProvider(ctx context.Context, r publishRequest, key string) (*mount, error) {
	if d.cfg.Providers == nil {
		return nil, status.Error(codes.FailedPrecondition, "this plugin has no --source to read SecretProviderClasses from")
	}
	mt := &mount{volumeID: r.volumeID, key: key}
	cfg := d.providerConfig(r, mt)
	err := d.joinProvider(ctx, r, mt, func(f *provider.Files) error {
		v, err := d.volumes.MountPayload(r.target, cfg, f.Payload(r.attrs.Spec.FSGroup))
		mt.vol = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return mt, nil
}

// providerConfig is volumeConfig for a provider volume: the keeper holds
// what the next process needs to join the entry again (the request's
// volume_context and secrets, in its memory only), and the volume leaves
// its entry once the mount is gone, however it went.
func (d *Driver) providerConfig(r publishRequest, mt *mount) mounted.Config {
	cfg := d.volumeConfig(r.target, mt, r.attrs)
	cfg.Meta = d.providerMeta(r, mt.key)
	gone := cfg.OnUnmount
	cfg.OnUnmount = func() {
		if m := mt.provider.Load(); m != nil {
			m.Close()
		}
		gone()
	}
	return cfg
}

func (d *Driver) providerMeta(r publishRequest, key string) []byte {
	if d.cfg.Keeper == nil {
		return nil
	}
	b, _ := json.Marshal(kept{VolumeID: r.volumeID, Key: key, Attrs: *r.attrs, Context: r.context, Secrets: r.secrets})
	return b
}

// joinProvider makes mt a member of its entry; show gets the first files
// (mounts them, or switches a taken-over mount to them).
func (d *Driver) joinProvider(ctx context.Context, r publishRequest, mt *mount, show func(*provider.Files) error) error {
	fsGroup := r.attrs.Spec.FSGroup
	m, err := d.cfg.Providers.Join(ctx, providerRequest(r), show, func(f *provider.Files) {
		if err := mt.vol.SetPayload(f.Payload(fsGroup)); err != nil {
			d.log.Warn("provider volume keeps its last good files", "volume", r.volumeID, "target", r.target, "err", err)
		}
	}, func(err error) { mt.vol.Report(err) })
	if err != nil {
		return err
	}
	mt.provider.Store(m)
	return nil
}

// republishProvider asks the provider again with the republished request
// (its fresh token). A failure keeps the last good files and answers OK.
func (d *Driver) republishProvider(ctx context.Context, mt *mount, r publishRequest) {
	var err error
	if m := mt.provider.Load(); m != nil {
		err = m.Refresh(ctx, providerRequest(r))
	} else {
		// Taken over while the provider was unreachable: join now.
		err = d.joinProvider(ctx, r, mt, func(f *provider.Files) error { return mt.vol.SetPayload(f.Payload(r.attrs.Spec.FSGroup)) })
	}
	if err != nil {
		d.log.Warn("republish kept the last good files", "volume", r.volumeID, "target", r.target, "err", err)
	}
	if meta := d.providerMeta(r, mt.key); meta != nil {
		mt.vol.SetMeta(meta)
	}
}

// resumeProvider takes back a provider volume the keeper held: it shows
// what the previous process showed, joins its entry (one call, shared with
// every volume taken back with it) and follows it again. An unreachable
// provider leaves the old files until the next republish joins.
func (d *Driver) restoreProvider(e keeper.Entry, k kept) (*takenOver, error) {
	if d.cfg.Providers == nil {
		e.Close()
		return nil, fmt.Errorf("a %s volume, and this plugin serves no providers", attrSecretProviderClass)
	}
	mt := &mount{volumeID: k.VolumeID, key: k.Key}
	r := publishRequest{volumeID: k.VolumeID, target: e.ID, attrs: &k.Attrs, context: k.Context, secrets: k.Secrets}
	vol, err := mounted.Restore(e, d.providerConfig(r, mt))
	if err != nil {
		return nil, err
	}
	mt.vol = vol
	return &takenOver{id: e.ID, k: k, mt: mt, vol: vol}, nil
}

// followProvider joins a restored provider volume's entry again.
func (d *Driver) followProvider(ctx context.Context, t *takenOver) {
	k, vol := t.k, t.vol
	vol.Follow(ctx, nil)
	d.mounts.put(t.id, t.mt)
	r := publishRequest{volumeID: k.VolumeID, target: t.id, attrs: &k.Attrs, context: k.Context, secrets: k.Secrets}
	if err := d.joinProvider(ctx, r, t.mt, func(f *provider.Files) error { return vol.SetPayload(f.Payload(k.Attrs.Spec.FSGroup)) }); err != nil {
		d.log.Warn("provider unreachable at takeover; the volume shows its previous files until its next republish", "volume", k.VolumeID, "target", t.id, "err", err)
	}
	d.log.Info("volume taken over", "volume", k.VolumeID, "target", t.id, "provider class", k.Attrs.Provider.Class)
}
