package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/secretfs/secretfs/sanity/cluster"
)

func main() {
	dir := flag.String("dir", "", "state folder (default: a new temp folder)")
	flag.Parse()
	ctx := context.Background()
	if err := cluster.EnsureBinaries(ctx, "etcd", "kube-apiserver", "kubectl"); err != nil {
		fail(err)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "secretfs-cluster-")
		if err != nil {
			fail(err)
		}
		*dir = d
	}
	abs, _ := filepath.Abs(*dir)
	c, err := cluster.StartControlPlane(ctx, abs, cluster.Options{Detach: true})
	if err != nil {
		fail(err)
	}
	slog.Info("started", "dir", c.Dir, "pids", c.PIDs(), "kubectl", filepath.Join(cluster.BinDir(), "kubectl"))
	fmt.Println(c.Kubeconfig) // the only stdout line: KUBECONFIG=$(start.sh)
}

func fail(err error) {
	slog.Error("controlplane", "err", err)
	os.Exit(1)
}
