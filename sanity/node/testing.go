package node

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/secretfs/secretfs/sanity/cluster"
)

// Available reports why a node cannot run here ("" if it can): root, FUSE,
// and the kubelet binary built by sanity/cluster/build.sh.
func Available() string {
	if os.Geteuid() != 0 {
		return errNotRoot.Error()
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "no /dev/fuse"
	}
	return ""
}

// Start starts a control plane (cluster.Start) and a node on it, both
// stopped at t.Cleanup; the node's folder is kept if the test failed.
// kubelet is built by sanity/cluster/build.sh if missing (~11 min cold).
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	if why := Available(); why != "" {
		t.Skip(why)
	}
	if !cluster.Built("kubelet") && testing.Short() {
		t.Skip("-short: kubelet not built; run sanity/cluster/build.sh first")
	}
	c := cluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := cluster.EnsureBinaries(ctx, "kubelet"); err != nil {
		t.Fatal(err)
	}
	if opts.Log == nil {
		opts.Log = slog.Default().With("test", t.Name())
	}
	n, err := StartNode(ctx, c, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after cluster.Start's cleanup, so it runs first: the node
	// stops before its API server.
	t.Cleanup(func() {
		if t.Failed() {
			n.Keep = true
			t.Logf("node folder kept in %s: kubelet.log, containerd.log, secretfs-csi-*.log, pod-logs/", n.Dir)
		}
		n.Stop()
	})
	return n
}
