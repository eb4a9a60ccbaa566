package main

import (
	"fmt"
	"io"
	"runtime"
)

// linuxOnly stands for a subcommand that serves FUSE, on a system without
// it (linuxonly_other.go): one line on stderr, exit status 1. macFUSE and
// WinFsp are not supported: nothing here tests them.
func linuxOnly(name, summary string) command {
	return command{summary + " (Linux only)", func(_ []string, _, stderr io.Writer) int {
		fmt.Fprintf(stderr, "secretfs %s: needs Linux (FUSE); on %s only env, exec and version work\n", name, runtime.GOOS)
		return 1
	}}
}
