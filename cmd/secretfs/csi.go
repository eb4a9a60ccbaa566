package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/secretfs/secretfs/backend/provider"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/csi"
	"github.com/secretfs/secretfs/keeper"
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
	started := time.Now()
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
	if *source != "none" {
		b, err := openSource(*source)
		if err != nil {
			return fail(err)
		}
		cfg.Cache = cache.New(b, cache.Options{Logger: log, Idle: idle})
		defer cfg.Cache.Close()
		// Only the API server knows pods' tokens; a file source reads
		// the same whoever asks.
		cfg.PodTokens = *source == "kube"
		pool, client, err := openProviders(*source, b, providerDirs.dirs, *providerMaxRecv, log)
		if err != nil {
			return fail(err)
		}
		if client != nil {
			defer client.Close()
		}
		cfg.Providers = pool
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Health first: waiting for the keeper or taking mounts back must not
	// look like a dead process to the liveness probe.
	if *metricsAddr != "" {
		srv, err := serveMetrics(*metricsAddr, log)
		if err != nil {
			return fail(err)
		}
		defer srv.Close()
	}
	if *keeperPath != "" {
		// The link dials, and dials again after every keeper restart,
		// until the plugin has handed its mounts over.
		cfg.Keeper = keeper.NewLink(*keeperPath, keeper.KindCSI, log)
		linked, unlink := context.WithCancel(context.Background())
		defer unlink()
		go cfg.Keeper.Run(linked)
	}
	d, err := csi.New(cfg)
	if err != nil {
		return fail(fmt.Errorf("--mount-root: %w", err))
	}
	// Take held mounts back first: until then their requests wait, and
	// the stale-mount scan below would wait with them.
	if n, err := d.Resume(ctx); err != nil {
		log.Warn("keeper unavailable; its mounts will be cleaned and republished", "err", err)
	} else if n > 0 {
		log.Info("mounts taken over from the keeper", "volumes", n, "since_start_ms", time.Since(started).Milliseconds())
	}
	if n, err := d.CleanupStale(); err != nil {
		log.Warn("stale mounts left", "cleaned", n, "err", err)
	} else if n > 0 {
		log.Info("stale mounts cleaned", "cleaned", n)
	}

	err = csi.NewServer(d, csi.ServerOptions{
		Endpoint: *endpoint, RegistrationDir: *regDir, RegistrationEndpoint: *regEndpoint, Logger: log,
	}).Run(ctx)
	if cfg.Keeper != nil {
		// The keeper holds the mounts for the next process; a Pod's
		// termination grace (30 s by default) bounds the wait for it.
		stopping, cancel := context.WithTimeout(context.Background(), *stopWait)
		d.HandOver(stopping)
		cancel()
	}
	if err != nil {
		return fail(err)
	}
	log.Info("CSI plugin stopped")
	return 0
}

// serveMetrics serves /metrics and /healthz (the DaemonSet's liveness
// probe: the process answers).
func serveMetrics(addr string, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	return srv, nil
}
