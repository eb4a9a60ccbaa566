//go:build !unix

package main

import (
	"os"
	"os/exec"
)

// execCommand runs the command as a child to its end: Windows has no
// execve. Its exit status becomes ours (runChild).
func execCommand(path string, argv, env []string) (int, error) {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return runChild(cmd)
}
