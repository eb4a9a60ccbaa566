// Package file is the "file:DIR" source: a folder of Kubernetes manifests
// (*.yaml, *.yml, *.json directly in DIR, each holding one or more objects;
// only Secrets are used). Every Get re-reads the folder (scan.go), parsing
// again only the files whose stamp changed; concurrent Gets share one read
// that started after them (coalesce.go). Watch shares one fsnotify watch
// of the folder between all watched Secrets and reports, per Secret, only
// real changes.
//
// A Secret defined in two files is an error naming both (ErrDuplicate),
// and a Secret not found while some file cannot be read or parsed is
// ErrUnreachable rather than "not found" (it may be in that file), so a
// broken edit never looks like a deleted Secret.
//
// Only regular files are read (read.go): a FIFO, socket or device named
// like a manifest is looked at with lstat and never opened, a manifest over
// MaxManifestSize is refused by its size; both are left out like objects of
// another kind and named once in the log. Manifests are parsed strictly by
// secret.ParseManifests, whose errors never quote a value.
//
// The package builds on every system the workstation tool runs on. What
// differs is in stat_unix.go (Linux, macOS: lstat, open with O_NOFOLLOW,
// the inode and ctime stamp) and stat_other.go (Windows: no stamp, so
// every scan parses every file); the watch is fsnotify everywhere
// (inotify, kqueue, ReadDirectoryChangesW), so Linux tests run the same
// watch code the other systems do.
package file
