//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/secretfs/secretfs/backend/provider"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/csi"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/secmem"
)

const csiSynopsis = `secretfs csi --endpoint unix:///path/csi.sock --node-id NODE --source SOURCE
             [--registration-dir DIR] [--metrics-addr ADDR] [--mount-root DIR]
             [--keeper PATH] [--cache-idle DURATION]
             [--provider-dir DIR]... [--provider-max-recv-bytes N]

Serves the CSI driver ` + csi.DriverName + ` (Identity, Node and a minimal
Controller): volumes described like a Kubernetes secret volume, mounted as
read-only in-memory FUSE filesystems. SOURCE is file:DIR or kube; volumes
whose data comes in nodePublishSecretRef need no source (--source none).
Volumes with secretProviderClass get their files from a Secrets Store CSI
provider listening on DIR/NAME.sock.`

func init() {
	commands["csi"] = command{"serve the CSI driver (kubelet plugin)", runCSI}
}

func runCSI(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("csi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", csiSynopsis)
		fs.PrintDefaults()
	}
	endpoint := fs.String("endpoint", "unix:///var/lib/kubelet/plugins/"+csi.DriverName+"/csi.sock", "CSI socket")
	nodeID := fs.String("node-id", "", "this node's name (required; in a DaemonSet: spec.nodeName)")
	source := fs.String("source", "", "where Secrets come from: file:DIR, kube, or none")
	regDir := fs.String("registration-dir", "", "kubelet's plugins_registry folder: register there without a sidecar")
	regEndpoint := fs.String("kubelet-endpoint", "", "the CSI socket path as kubelet sees it (default: the --endpoint path)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus /metrics and /healthz on this address (e.g. :9808)")
	mountRoot := fs.String("mount-root", csi.DefaultMountRoot, "kubelet's root-dir: the only tree where volumes are mounted, unmounted or removed (and dead ones cleaned at start)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	cacheIdle := fs.Duration("cache-idle", cache.DefaultIdle, "how long a Secret no volume shows any more stays cached (watched) before it is dropped and wiped")
	keeperPath := fs.String("keeper", "", "socket of a 'secretfs keeper': mounts outlive this process and the next one takes them back")
	stopWait := fs.Duration("stop-wait", 25*time.Second, "with --keeper: how long a stopping plugin waits for a keeper to hold every mount (keep it below the Pod's termination grace period)")
	providerDirs := &dirsFlag{dirs: provider.DefaultDirs}
	fs.Var(providerDirs, "provider-dir", "folder of Secrets Store CSI provider sockets NAME.sock (repeatable; default "+strings.Join(provider.DefaultDirs, " and ")+")")
	providerMaxRecv := fs.Int("provider-max-recv-bytes", provider.DefaultMaxRecvBytes, "largest Mount reply accepted from a provider")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "secretfs csi: %v\n", err)
		return 1
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if *nodeID == "" {
		return fail(errors.New("--node-id is required"))
	}
	idle := *cacheIdle
	switch {
	case idle < 0:
		return fail(fmt.Errorf("--cache-idle %v: must not be negative", idle))
	case idle == 0:
		idle = -1 // cache.Options: 0 is the default, negative is "at once"
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fail(fmt.Errorf("--log-level: %w", err))
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	secmem.SetLogger(log)
	raiseFileLimit()

	cfg := csi.Config{Version: version, NodeID: *nodeID, Logger: log, MountRoot: *mountRoot}
	closeSource, err := openCSISource(&cfg, *source, cache.Options{Logger: log, Idle: idle}, providerDirs.dirs, *providerMaxRecv)
	if err != nil {
		return fail(err)
	}
	defer closeSource()
	if cfg.Events, err = openEvents(*source, *nodeID); err != nil {
		return fail(err)
	}
	defer cfg.Events.Shutdown()
	log.Info("pod events", "enabled", cfg.Events != nil)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Health first: waiting for the keeper or taking mounts back must not
	// look like a dead process to the liveness probe.
	if *metricsAddr != "" {
		srv, err := metrics.Serve(*metricsAddr, log)
		if err != nil {
			return fail(err)
		}
		defer srv.Close()
	}
	err = csi.RunPlugin(ctx, csi.PluginConfig{Driver: cfg, KeeperPath: *keeperPath, StopWait: *stopWait,
		Server: csi.ServerOptions{Endpoint: *endpoint, RegistrationDir: *regDir, RegistrationEndpoint: *regEndpoint, Logger: log}})
	if err != nil {
		return fail(err)
	}
	log.Info("CSI plugin stopped")
	return 0
}

// openCSISource gives the driver its Secrets (a cache over the source) and
// its Secrets Store providers; "none" gives neither (volumes whose data is
// in nodePublishSecretRef need no source). The func closes them.
func openCSISource(cfg *csi.Config, source string, opts cache.Options, providerDirs []string, maxRecv int) (func(), error) {
	if source == "none" {
		return func() {}, nil
	}
	b, err := openSource(source)
	if err != nil {
		return nil, err
	}
	pool, client, err := openProviders(source, b, providerDirs, maxRecv, opts.Logger)
	if err != nil {
		return nil, err
	}
	cfg.Cache = cache.New(b, opts)
	// Only the API server knows pods' tokens; a file source reads the
	// same whoever asks.
	cfg.PodTokens = source == "kube"
	cfg.Providers = pool
	return func() {
		if client != nil {
			client.Close()
		}
		cfg.Cache.Close()
	}, nil
}
