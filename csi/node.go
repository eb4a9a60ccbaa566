package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretfs/secretfs/backend"
)

// maxVolumeContext bounds volume_context (keys and values in all): real
// attributes are a few KiB; more is refused before anything reads it.
const maxVolumeContext = 256 << 10

// NodePublishVolume validates the whole request before looking anything
// up, so a bad request fails the same way whatever is mounted.
func (d *Driver) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	if n := contextSize(req.GetVolumeContext()); n > maxVolumeContext {
		return nil, status.Errorf(codes.InvalidArgument, "volume_context is %d bytes, over the limit of %d", n, maxVolumeContext)
	}
	if err := checkVolumeID(req.GetVolumeId()); err != nil {
		return nil, err
	}
	target, err := d.checkPath("target_path", req.GetTargetPath())
	if err != nil {
		return nil, err
	}
	c := req.GetVolumeCapability()
	if err := checkCapability(c); err != nil {
		return nil, err
	}
	// req.Readonly false is fine: the mount is read-only whatever is asked.
	a, err := ParseVolumeAttributes(req.GetVolumeId(), req.GetVolumeContext(), c.GetMount().GetVolumeMountGroup())
	if err != nil {
		return nil, invalidArg(err)
	}
	if err := checkPodTarget(req.GetVolumeId(), target, a); err != nil {
		return nil, invalidArg(err)
	}
	r := publishRequest{volumeID: req.GetVolumeId(), target: target.Name, path: target, attrs: a}
	if a.Provider != nil {
		// The provider gets volume_context and secrets (tokens
		// included) as they came, as the driver forwards them.
		r.context, r.secrets = req.GetVolumeContext(), req.GetSecrets()
		if err := d.publish(ctx, r); err != nil {
			return nil, err
		}
		return &csi.NodePublishVolumeResponse{}, nil
	}
	// With the CSIDriver's serviceAccountTokenInSecrets, kubelet puts the
	// tokens in `secrets` (where CSI redacts them) instead of volume_context.
	secrets, tokens := req.GetSecrets(), a.Pod.Tokens
	if t, ok := secrets[tokensKey]; ok {
		tokens = t
		secrets = maps.Clone(secrets)
		delete(secrets, tokensKey) // never data of the volume
	}
	if len(a.Sources) > 0 {
		// Forwarded to the providers of secretProviderClass sources,
		// as for a provider volume; never data of the volume.
		r.context, r.secrets = req.GetVolumeContext(), req.GetSecrets()
	}
	if a.Static {
		r.secrets = secrets
	} else if d.cfg.PodTokens && tokens != "" {
		if r.id, err = podIdentity(tokens, a.Pod.Namespace, a.Pod.ServiceAccount); err != nil {
			return nil, invalidArg(err)
		}
	}
	if err := d.publish(ctx, r); err != nil {
		return nil, err
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if err := checkVolumeID(req.GetVolumeId()); err != nil {
		return nil, err
	}
	target, err := d.checkPath("target_path", req.GetTargetPath())
	if err != nil {
		return nil, err
	}
	if err := d.unpublish(ctx, req.GetVolumeId(), target); err != nil {
		return nil, err
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.cfg.NodeID}, nil
}

// NodeGetCapabilities: VOLUME_MOUNT_GROUP makes kubelet pass the Pod's
// fsGroup as volume_mount_group (with fsGroupPolicy File it would
// otherwise chown the files itself, which a read-only FUSE refuses).
func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	rpc := func(t csi.NodeServiceCapability_RPC_Type) *csi.NodeServiceCapability {
		return &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}}}
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: []*csi.NodeServiceCapability{
		rpc(csi.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP),
		rpc(csi.NodeServiceCapability_RPC_GET_VOLUME_STATS),
	}}, nil
}

// NodeGetVolumeStats reports the volume's size as the filesystem's statfs
// does: all of it used, none free (it is read-only).
func (d *Driver) NodeGetVolumeStats(_ context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	if err := checkVolumeID(req.GetVolumeId()); err != nil {
		return nil, err
	}
	if req.GetVolumePath() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_path is required")
	}
	// Every published volume passed the guard, so a path it refuses holds
	// none: NotFound, as CSI wants for a path without the volume.
	p, err := d.guard.Check(req.GetVolumePath())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "volume_path: %v: no volume is published there", err)
	}
	path := p.Name
	mt := d.mounts.get(path)
	if mt == nil || mt.volumeID != req.GetVolumeId() {
		return nil, status.Errorf(codes.NotFound, "volume %s is not published at %s", shortKey(req.GetVolumeId()), path)
	}
	st, err := d.mounter.Statfs(path)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", path, err)
	}
	bytes := int64(st.Blocks) * st.Bsize
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: bytes, Used: bytes},
		{Unit: csi.VolumeUsage_INODES, Total: int64(st.Files), Used: int64(st.Files)},
	}}, nil
}

func checkVolumeID(id string) error {
	if id == "" {
		return status.Error(codes.InvalidArgument, "volume_id is required")
	}
	return nil
}

// contextSize is volume_context's size, keys and values in all.
func contextSize(vc map[string]string) int {
	n := 0
	for k, v := range vc {
		n += len(k) + len(v)
	}
	return n
}

// podIdentity reads serviceAccount.tokens ({"<audience>": {"token": …,
// "expirationTimestamp": …}}): every token with its expiry, for the cache
// entry of the pod's service account to read with whichever is accepted
// (a token for another audience is refused and dropped). The volumes of
// one account share what any of their tokens read, so the account comes
// from kubelet (serviceAccount.name, podInfoOnMount) and must also be the
// one every token claims; otherwise the volume shares with no other
// (defence against a CSIDriver without podInfoOnMount, where a Pod could
// name another account). The error never quotes the text: it holds
// credentials.
func podIdentity(raw, namespace, serviceAccount string) (backend.Identity, error) {
	var toks map[string]struct {
		Token      string `json:"token"`
		Expiration string `json:"expirationTimestamp"`
	}
	if err := json.Unmarshal([]byte(raw), &toks); err != nil {
		return backend.Identity{}, fmt.Errorf("volume attribute %s: not a JSON map of audience to {token, expirationTimestamp}", tokensKey)
	}
	id := backend.Identity{Namespace: namespace, ServiceAccount: serviceAccount}
	for _, aud := range slices.Sorted(maps.Keys(toks)) {
		t := toks[aud]
		if t.Token == "" {
			continue
		}
		tok := backend.Token{Value: t.Token}
		if t.Expiration != "" {
			exp, err := time.Parse(time.RFC3339, t.Expiration)
			if err != nil {
				return backend.Identity{}, fmt.Errorf("volume attribute %s: expirationTimestamp of audience %s is not RFC 3339", tokensKey, shortKey(aud))
			}
			tok.Expiry = exp
		}
		id.Tokens = append(id.Tokens, tok)
	}
	if len(id.Tokens) == 0 {
		return backend.Identity{}, fmt.Errorf("volume attribute %s: no token in it", tokensKey)
	}
	for _, t := range id.Tokens {
		if ns, sa, ok := backend.TokenServiceAccount(t.Value); !ok || ns != namespace || sa != serviceAccount {
			id.ServiceAccount = ""
		}
	}
	return id, nil
}
