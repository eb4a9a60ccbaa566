// Package thirdparty holds no code: its test checks that third_party/go-fuse
// is go-fuse v2.12.1 plus exactly the patches in third_party/go-fuse/patches
// (see third_party/go-fuse/PATCH.md). third_party/go-fuse is a module of its
// own, which `go test ./...` of secretfs does not enter; this package is how
// that check runs with the rest.
package thirdparty
