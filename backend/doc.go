// Package backend defines where Secrets come from. Implementations live in
// sub-packages (file, kube); the cache is their only caller.
package backend
