package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

func init() {
	commands["version"] = command{"print the version and the keeper protocol versions spoken", runVersion}
}

// keeperProtocols are the keeper protocol versions this build speaks
// (keeper/wire.Versions, set by keeper.go); none where there is no keeper
// (not Linux).
var keeperProtocols []uint32

// runVersion prints the release and the keeper protocol versions: two
// releases hand mounts over through a keeper when they share one.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "secretfs version: takes no arguments")
		return 2
	}
	fmt.Fprintln(stdout, "secretfs", release())
	if len(keeperProtocols) == 0 {
		return 0
	}
	v := make([]string, len(keeperProtocols))
	for i, n := range keeperProtocols {
		v[i] = fmt.Sprint(n)
	}
	fmt.Fprintln(stdout, "keeper protocol:", strings.Join(v, " "))
	return 0
}

// release is the version set at build time, with the commit Go recorded.
func release() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+modified"
		}
	}
	if rev == "" {
		return version
	}
	return fmt.Sprintf("%s (commit %s%s)", version, rev, dirty)
}
