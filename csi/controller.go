package csi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The Controller is stateless: a volume is nothing but its attributes, so
// the id is derived from the name and the parameters (same name and
// parameters → same id, the idempotency CreateVolume needs) and the
// parameters travel as volume_context. A hash keeps the id under CSI's
// 128-byte limit whatever the items.
const (
	controllerIDPrefix = "sfs-"
	controllerIDHexLen = 40
)

func controllerID(name string, params map[string]string) string {
	// json.Marshal sorts map keys: the id is canonical.
	js, _ := json.Marshal(struct {
		Name   string            `json:"name"`
		Params map[string]string `json:"params"`
	}{name, params})
	sum := sha256.Sum256(js)
	return controllerIDPrefix + hex.EncodeToString(sum[:])[:controllerIDHexLen]
}

// isControllerID says the id was made by our Controller, which makes the
// volume persistent for the namespace rule: its attributes come from a PV
// or StorageClass an admin wrote. kubelet's inline ids are "csi-<sha256>".
func isControllerID(id string) bool {
	h, ok := strings.CutPrefix(id, controllerIDPrefix)
	if !ok || len(h) != controllerIDHexLen {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: []*csi.ControllerServiceCapability{{
		Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{
			Type: csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		}},
	}}}, nil
}

func (d *Driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if req.GetVolumeContentSource() != nil {
		return nil, status.Error(codes.InvalidArgument, "volume_content_source: secretfs volumes have no content to copy")
	}
	// Keys under csi.storage.k8s.io/ describe the PVC (external-provisioner
	// --extra-create-metadata); copied, they could pose as pod info.
	params := map[string]string{}
	for k, v := range req.GetParameters() {
		if !strings.HasPrefix(k, podInfoPrefix) {
			params[k] = v
		}
	}
	// Refuse bad parameters now rather than at every publish. A
	// persistent volume may lack secretNamespace until a pod namespace
	// arrives at publish, so check with a stand-in one.
	probe := map[string]string{podNamespaceKey: "default"}
	for k, v := range params {
		probe[k] = v
	}
	if _, err := ParseAttributes(probe, true, ""); err != nil {
		return nil, invalidArg(err)
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      controllerID(req.GetName(), params),
		CapacityBytes: 0, // unknown: the size is the Secret's
		VolumeContext: params,
	}}, nil
}

// DeleteVolume has nothing to delete: the volume was only a name.
func (d *Driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *Driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_capabilities are required")
	}
	if !isControllerID(req.GetVolumeId()) {
		return nil, status.Errorf(codes.NotFound, "volume %q was not made by this driver", req.GetVolumeId())
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// checkCapabilities accepts mount access in any mode: the filesystem is
// read-only whatever is asked, as kubelet's secret volume is.
func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume_capabilities are required")
	}
	for i, c := range caps {
		if err := checkCapability(c); err != nil {
			return status.Errorf(codes.InvalidArgument, "volume_capabilities[%d]: %s", i, status.Convert(err).Message())
		}
	}
	return nil
}

func checkCapability(c *csi.VolumeCapability) error {
	switch {
	case c == nil:
		return status.Error(codes.InvalidArgument, "volume_capability is required")
	case c.GetBlock() != nil:
		return status.Error(codes.InvalidArgument, "block access is not supported: secretfs volumes are filesystems")
	case c.GetMount() == nil:
		return status.Error(codes.InvalidArgument, "volume_capability: access_type mount is required")
	case c.GetAccessMode() == nil:
		return status.Error(codes.InvalidArgument, "volume_capability: access_mode is required")
	}
	return nil
}
