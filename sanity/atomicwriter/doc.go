// Package atomicwriter writes a folder the way kubelet's atomic writer
// (pkg/volume/util/atomic_writer.go) writes a `secret:` volume on its
// tmpfs, so that tests can put a reader of kubelet's layout (secretfs exec
// --dir) through kubelet's real switch: a new `..<timestamp>` folder, a
// `..data_tmp` link renamed over `..data`, then the top-level links, then
// the old folder removed at once.
package atomicwriter
