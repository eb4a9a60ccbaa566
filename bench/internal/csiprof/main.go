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
