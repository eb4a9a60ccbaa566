package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfs/secretfs/sanity/cluster"
	"github.com/secretfs/secretfs/sanity/node"
)

func main() {
	plugin := flag.String("plugin", "", "secretfs binary to run as the CSI plugin (none if empty)")
	keep := flag.Bool("keep", false, "keep the node folder (logs) at exit")
	flag.Parse()
	skip, err := node.Unavailable()
	if err == nil && skip != "" {
		err = errors.New(skip)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		os.Exit(1)
	}
	if err := run(*plugin, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		os.Exit(1)
	}
}

func run(plugin string, keep bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cluster.EnsureBinaries(ctx, "etcd", "kube-apiserver", "kubelet"); err != nil {
		return err
	}
	t0 := time.Now()
	c, err := cluster.StartControlPlane(ctx, "", cluster.Options{})
	if err != nil {
		return err
	}
	defer c.Stop()
	n, err := node.StartNode(ctx, c, "", node.Options{})
	if err != nil {
		return err
	}
	n.Keep = keep
	defer n.Stop()
	slog.Info("node Ready", "after", time.Since(t0).Round(time.Millisecond))
	if plugin != "" {
		if _, err := n.Client().StorageV1().CSIDrivers().Create(ctx, node.DefaultCSIDriver(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		p, err := n.StartPlugin(ctx, plugin)
		if err != nil {
			return err
		}
		slog.Info("plugin registered", "log", p.Log)
	}
	fmt.Printf("KUBECONFIG=%s\nnode folder: %s\n", c.Kubeconfig, n.Dir)
	<-ctx.Done()
	slog.Info("stopping")
	return nil
}
