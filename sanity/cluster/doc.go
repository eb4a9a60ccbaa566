// Package cluster runs a real Kubernetes control plane (etcd v3.7.3 and
// kube-apiserver v1.37.2, built from the Go module proxy by build.sh) on
// 127.0.0.1 for tests: no controller-manager, no scheduler, no nodes.
//
// Timeouts: the first use on a machine builds the binaries (~11 min cold on
// 2 cores, seconds afterwards), longer than go test's default -timeout 10m.
// Run build.sh beforehand, or pass -timeout 30m (as `make test` should). If
// the test deadline comes first, the build carries on in the background and
// the test fails saying so; the next run picks up the finished binaries.
// With -short, Start skips instead of building.
package cluster
