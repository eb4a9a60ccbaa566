// Package makefile holds tests of the repository's Makefile: the targets
// it names must exist in the tree, so a renamed package or function breaks
// `go test` instead of `make fuzz` some time later.
package makefile
