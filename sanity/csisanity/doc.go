// Package csisanity runs csi-sanity (github.com/kubernetes-csi/csi-test/v5)
// against the real `secretfs csi` binary on a real unix socket, with a
// file: source holding a test Secret, so that every publish mounts a real
// FUSE volume. Needs root and /dev/fuse; skipped otherwise.
//
//	go test -count=1 ./sanity/csisanity/
package csisanity
