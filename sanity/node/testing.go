package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/secretfs/secretfs/sanity/cluster"
	"github.com/secretfs/secretfs/sanity/needroot"
)

// why is what a node needs root for, in SKIP lines and errors.
const why = "a node runs containerd, kubelet and FUSE mounts"

// Unavailable tells whether a node can run here. A regular user gets the
// line to skip with, "SKIP (needs root: …)" as sanity/needroot words it;
// root without /dev/fuse gets an error: as root no node test may skip,
// or a green `make test` would prove nothing.
func Unavailable() (skip string, err error) {
	if os.Geteuid() != 0 {
		return "SKIP (needs root: " + why + ")", nil
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "", fmt.Errorf("running as root but /dev/fuse is unusable (%w): node tests must not skip as root", err)
	}
	return "", nil
}

// Start starts a control plane (cluster.Start) and a node on it, both
// stopped at t.Cleanup; the node's folder is kept if the test failed.
// kubelet is built by sanity/cluster/build.sh if missing (~11 min cold).
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	needroot.FUSE(t, why)
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
