// Package e2e runs secretfs on a real single-node Kubernetes (etcd,
// kube-apiserver, containerd and kubelet v1.37.2; see sanity/node) and
// checks, Pod by Pod, that a container sees a secretfs CSI inline volume
// exactly as it sees kubelet's own `secret:` volume of the same Secret.
//
//	go test -count=1 -timeout 45m -v ./e2e/      (make e2e; root, /dev/fuse)
//
// TestMain builds the plugin, starts the control plane, the node and the
// plugin (a host process registered through its own socket in kubelet's
// plugins_registry), and creates the CSIDriver object (deploy/'s manifest
// when there is one). Every case is a pair of Pods, one with the secretfs
// volume and one with the built-in volume, whose busybox containers print
// what they see; the test reads their logs, checks the expected content and
// asserts both print the same (the ..<timestamp> names normalised).
//
// Environment:
//
//	SECRETFS_E2E_LATENCY=1       also measure update latency of kubelet's
//	                             built-in volume (slow: ~1-2 min per round)
//	SECRETFS_E2E_LATENCY_N=20    updates per volume type in that test
//	SECRETFS_E2E_KEEP=1          keep the node folder (logs) even on success
//
// With -short and no kubelet built, everything is skipped.
package e2e
