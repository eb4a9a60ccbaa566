// Package backend defines where Secrets come from: the Backend interface
// (Get now, Watch for changes), the Ref and Identity a read is made with,
// and the errors every source returns alike (ErrNotFound, ErrForbidden,
// ErrNoWatch), so callers never look at a source's own error types.
//
// The sources are its sub-packages: file (a folder of manifests) and kube
// (the Kubernetes API). Package cache is the only caller of Get and Watch;
// cmd/secretfs picks the source (--source). Volumes of a Secrets Store
// provider do not come through a Backend: package backend/provider asks the
// provider beside it, and reads only the SecretProviderClass through the
// ClassReader a source may also implement (kube does).
//
// Data flows one way, backend → cache → live → fusefs; nothing here
// imports those packages.
package backend
