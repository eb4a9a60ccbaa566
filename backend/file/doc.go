// Package file is the "file:DIR" source: a folder of Kubernetes manifests
// (SPEC §3). Every Get re-reads the folder; Watch shares one fsnotify watch
// of the folder between all watched Secrets and reports, per Secret, only
// real changes.
//
// Only regular files are read (read.go): a FIFO, socket or device named
// like a manifest is looked at with lstat and never opened, a manifest over
// MaxManifestSize is refused by its size; both are left out like objects of
// another kind and named once in the log. Manifests are parsed strictly by
// secret.ParseManifests, whose errors never quote a value.
package file
