// Package mountns runs a test inside a private mount namespace, so that
// tests which send hostile targets to the CSI plugin, or exercise its
// unmount and remove paths, cannot harm the machine that runs them: every
// mount they make or undo is invisible to the host, and the host's
// mounts are copies they may lose without loss.
//
// A test calls Enter first. In the ordinary test process Enter re-executes
// the test binary for just that test with CLONE_NEWNS (Go's runtime then
// makes / rprivate in the child before exec, so no mount event propagates
// back to the host), relays its output and result, and returns false: the
// test function returns at once. In the child Enter checks that it really
// runs in a namespace of its own with a private / and returns true. Helpers
// that do harm if run on the host call Require, which fails the test
// unless it is inside.
package mountns
