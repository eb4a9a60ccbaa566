// Package needroot is how a test says it mounts FUSE. Without root the test
// is skipped with one line, "SKIP (needs root: <why>)", so a non-root
// `make test-unit` shows what it did not run. As root the test never skips:
// a missing /dev/fuse fails it, because a FUSE test silently skipped while
// root would let a green `make test` prove nothing.
package needroot
