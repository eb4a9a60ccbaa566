// Package upgrade proves that adjacent releases hand mounts over through
// the keeper in both directions. It builds the previous release from the
// commit recorded in PREVIOUS_RELEASE (a file beside this one), serves
// volumes with it while readers loop over every file and the Secrets
// change, replaces it with this tree's build (the upgrade), then puts the
// previous one back (the rollback): no read may fail, every read shows a
// version that was written, and updates still arrive after each step. It
// runs once with the keeper of the previous release (the keeper is not
// upgraded with the plugin) and once with the keeper of this one.
//
//	go test ./sanity/upgrade/            20 volumes
//	go test -short ./sanity/upgrade/     10 volumes
//
// The commit must be in the clone: a shallow clone fails the test (fetch
// the history, e.g. actions/checkout with fetch-depth: 0).
package upgrade
