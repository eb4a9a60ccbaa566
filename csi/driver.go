package csi

import (
	"fmt"
	"log/slog"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/secretfs/secretfs/backend/provider"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/events"
	"github.com/secretfs/secretfs/keeper"
	"github.com/secretfs/secretfs/targetpath"
)

// DriverName is the CSI driver name (the CSIDriver object's name).
const DriverName = "secretfs.csi.dev"

// Config describes one plugin process.
type Config struct {
	Name    string // default DriverName
	Version string
	NodeID  string
	// Cache reads Secrets named by secretName; nil means only volumes
	// whose data arrives in the request (nodePublishSecretRef) work.
	Cache *cache.Cache
	// PodTokens passes the pod's service account token (from
	// csi.storage.k8s.io/serviceAccount.tokens) to the source, so the
	// pod's RBAC decides. Only the kube source uses tokens.
	PodTokens bool
	// Providers serves secretProviderClass volumes; nil refuses them.
	Providers *provider.Pool
	// Events, when set, records each mounted volume's failed refreshes
	// and recoveries on its Pod (volumes with pod info only); nil: they
	// are only logged and counted.
	Events *events.Recorder
	// Keeper, when set, has every mount held by the keeper so it
	// outlives this process.
	Keeper *keeper.Link
	// MountRoot is the only tree the plugin mounts in, unmounts in or
	// removes from (kubelet's root-dir); default DefaultMountRoot.
	MountRoot string
	Logger    *slog.Logger
	// Mounter answers what is mounted at a target and unmounts dead
	// mounts of ours; nil means the host's (the kernel's mount table).
	Mounter Mounter
	// Volumes mounts the volume of a publish; nil means package mounted.
	Volumes VolumeMaker
}

// Driver implements the CSI Identity, Controller and Node services.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	cfg     Config
	log     *slog.Logger
	mounts  *mounts
	guard   *targetpath.Guard // every target_path and volume_path passes it
	mounter Mounter
	volumes VolumeMaker
}

// New returns a driver; Serve it with a Server. It fails only on a bad
// MountRoot.
func New(cfg Config) (*Driver, error) {
	if cfg.Name == "" {
		cfg.Name = DriverName
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MountRoot == "" {
		cfg.MountRoot = DefaultMountRoot
	}
	if cfg.Mounter == nil {
		cfg.Mounter = hostMounter{}
	}
	if cfg.Volumes == nil {
		cfg.Volumes = mountedMaker{}
	}
	g, err := targetpath.New(cfg.MountRoot, fsType)
	if err != nil {
		return nil, fmt.Errorf("csi: %w", err)
	}
	d := &Driver{cfg: cfg, log: cfg.Logger, guard: g, mounter: cfg.Mounter, volumes: cfg.Volumes}
	d.mounts = newMounts(d.ownMountID)
	return d, nil
}
