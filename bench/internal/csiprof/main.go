// Command csiprof is a diagnostic stand-in for `secretfs csi --source
// file:DIR`: the same driver, cache and file source wired the same way as
// cmd/secretfs (which is package main and cannot be imported), plus
// net/http/pprof on the metrics address. BenchmarkCSI/rss uses it instead
// of the real binary when SECRETFS_BENCH_CSI_PPROF=DIR is set, to save
// heap and goroutine profiles at 500 volumes into DIR.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/secretfs/secretfs/backend/file"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/csi"
	"github.com/secretfs/secretfs/metrics"
)

func main() {
	fs := flag.NewFlagSet("csi", flag.ExitOnError)
	endpoint := fs.String("endpoint", "", "")
	nodeID := fs.String("node-id", "", "")
	source := fs.String("source", "", "file:DIR")
	metricsAddr := fs.String("metrics-addr", "", "")
	mountRoot := fs.String("mount-root", "", "kubelet's root-dir (targets must be below it)")
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "csi" {
		args = args[1:]
	}
	fs.Parse(args)
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	b, err := file.New(strings.TrimPrefix(*source, "file:"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c := cache.New(b, cache.Options{Logger: log})
	defer c.Close()
	http.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	go http.ListenAndServe(*metricsAddr, nil)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := csi.New(csi.Config{NodeID: *nodeID, Cache: c, Logger: log, MountRoot: *mountRoot})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := csi.NewServer(d, csi.ServerOptions{Endpoint: *endpoint, Logger: log}).Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
