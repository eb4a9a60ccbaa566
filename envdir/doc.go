// Package envdir reads the variables of a mounted secret volume, as
// envFrom would make them from its Secret, and tells when the volume
// switched to another version: the `--dir` of `secretfs exec`.
//
// Both layouts are kubelet's atomic writer's: the files of one version in
// a hidden folder `..<timestamp>`, `..data` a link to it, each top-level
// name a link into `..data`. secretfs serves it from FUSE; kubelet writes
// it on a tmpfs, renaming a new `..data` over the old one.
//
// Read (read.go) resolves `..data`, reads the files of that version and
// resolves `..data` again; if it moved meanwhile (or the old version went
// away under the read) it reads again, so the variables are always of one
// version. A folder without `..data` is read as it is.
//
// Watch (watch_linux.go) only says "look again"; what counts as a change
// is the caller's to decide by comparing what Read returns. How a switch
// shows, as measured on this project's kernels:
//   - on secretfs, a watch on the `..data` link itself (IN_DONT_FOLLOW)
//     gets IN_DELETE_SELF at the switch (FUSE_NOTIFY_DELETE of the old
//     link); a watch through the link fires only when the old version's
//     grace ends, and the folder gets no events at all (FUSE has none);
//   - on kubelet's tmpfs, the folder gets IN_MOVED_TO for `..data`.
//
// Watch sets both watches, and polls `..data` every PollInterval as the
// fallback. Elsewhere than Linux (watch_other.go) it watches the folder
// with fsnotify and polls the same way.
package envdir
