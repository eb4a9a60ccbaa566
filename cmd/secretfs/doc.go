// Command secretfs shows Kubernetes Secrets as files without writing them
// to disk. Each subcommand only turns flags into calls of the packages.
package main
