//go:build unix

package main

import "syscall"

// execCommand replaces this process with the command (execve), so the
// command is what its parent waits for and signals; it returns only if
// that fails.
func execCommand(path string, argv, env []string) (int, error) {
	return 0, syscall.Exec(path, argv, env)
}
