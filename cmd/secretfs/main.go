package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/secretfs/secretfs/secmem"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

func main() {
	// Before anything reads a Secret: no core dump may hold one, whichever
	// subcommand runs (mount, csi, keeper, env, exec).
	if err := secmem.Harden(); err != nil {
		fmt.Fprintf(os.Stderr, "secretfs: %v\n", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return map[bool]int{true: 2, false: 0}[len(args) == 0]
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "secretfs: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: secretfs COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'secretfs COMMAND --help' for a command's flags.")
}
