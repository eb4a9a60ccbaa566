// Package fusefs is the in-memory, read-only FUSE filesystem of one volume,
// the last step before the kernel: package projection has turned a Secret into
// a Payload (paths, modes, bytes), and fusefs shows it laid out as
// kubelet's atomic writer lays out a secret volume:
//
//	..2026_11_26_22_08_37.12345/   the files of one version
//	..data -> ..2026_11_26_22_08_37.12345
//	username -> ..data/username    one link per top-level name
//
// It implements go-fuse's RawFileSystem directly (ops.go) so that node IDs
// are derived from (version, index of the sorted path) instead of being
// handed out at lookup. Two things rest on that invariant, and a change
// must keep both: a switch never changes what an inode the kernel holds
// shows (open files of an old version keep reading it), and a later server
// rebuilds every ID the kernel holds from a Snapshot (state.go).
//
// With Options.SubPathUpdates (stable.go) every path below the root is
// instead a stable node: a real file or folder whose ID is derived from
// its path and type alone and which shows the current version, so that a
// bind of it (kubelet's subPath) follows updates. Such a volume answers
// OPEN (a stable file with FOPEN_DIRECT_IO and a handle naming its
// version), is invalidated with FUSE_NOTIFY_INVAL_INODE and INVAL_ENTRY,
// never DELETE, and keeps a removed path's bytes while the kernel holds
// its node; `..data` and the version folders stay as they are. stable.go
// lists what the kernel imposes and how each point is met.
//
// A version's life (build, switch, grace, retire, wipe) is written once, as
// a numbered list, in the doc comment of Update; the functions it names
// are in update.go, version.go, bytes.go and, for the bytes, package
// secmem: one copy per distinct content, locked and kept out of core
// dumps, zeroed and unmapped by the last Release.
//
// Mount mounts with mount(2) as root and through fusermount3 as any other
// user (fusermount.go); either way the process keeps the /dev/fuse
// descriptor. A keeper (package keeper) can hold a copy of it together
// with a Snapshot written ahead of every switch through the Journal, so
// that after a crash Restore and Serve take the mount over; the takeover's
// steps are written once at mounted.Resume. Serve takes over with
// FUSE_NOTIFY_RESEND where the kernel has it and counts what is lost where
// it has not (resend.go); Handover stops serving for a planned stop.
// Notices to the kernel (notify.go) go through the keeper while it takes
// them in time; notify.go also tells the exit hazard of writing them here.
package fusefs
