//go:build linux

package main

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/secretfs/secretfs/backend/kube"
	"github.com/secretfs/secretfs/events"
)

// openEvents gives the plugin a recorder of Pod events, with its own
// identity: the kube source's (kubeconfig or in-cluster); for a file
// source only inside a cluster, from the Pod's service account. Elsewhere
// (a file source outside a cluster, or none) it returns nil: refresh
// failures are only logged and counted.
func openEvents(source, node string) (*events.Recorder, error) {
	var cfg *rest.Config
	var err error
	switch source {
	case "none":
		return nil, nil
	case "kube":
		if cfg, err = kube.LoadConfig(""); err != nil {
			return nil, fmt.Errorf("--source kube: %w", err)
		}
	default:
		// Events are optional for a file source: outside a cluster, and in
		// a Pod without a service account token (the chart's file mode
		// mounts none, while kubelet still sets KUBERNETES_SERVICE_HOST),
		// the plugin serves without them.
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, nil
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "secretfs"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("events: kube client: %w", err)
	}
	return events.New(client, events.Options{Node: node}), nil
}
