package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The workstation tool builds for macOS and Windows (issue 24): env and
// exec with the file: and kube sources, and the one-line refusal of the
// FUSE subcommands, without any package that serves FUSE linked in.
func TestCrossBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("cross builds take seconds each (-short)")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	linuxOnlyPkgs := []string{
		"github.com/hanwen/go-fuse/v2/fuse",
		"github.com/secretfs/secretfs/fusefs",
		"github.com/secretfs/secretfs/mounted",
		"github.com/secretfs/secretfs/keeper",
		"github.com/secretfs/secretfs/csi",
	}
	out := t.TempDir()
	for _, target := range []string{"darwin/arm64", "darwin/amd64", "windows/amd64"} {
		goos, goarch, _ := strings.Cut(target, "/")
		env := append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
		t.Run(goos+"_"+goarch, func(t *testing.T) {
			bin := filepath.Join(out, "secretfs-"+goos+"-"+goarch)
			build := exec.Command(goTool, "build", "-o", bin, ".")
			build.Env = env
			if b, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, b)
			}
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"needs Linux (FUSE)", "export %s=%s"} {
				if !bytes.Contains(b, []byte(s)) {
					t.Errorf("the binary lacks %q", s)
				}
			}
			list := exec.Command(goTool, "list", "-deps", ".")
			list.Env = env
			deps, err := list.Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range linuxOnlyPkgs {
				if bytes.Contains(deps, []byte("\n"+p+"\n")) {
					t.Errorf("%s is linked in", p)
				}
			}
		})
	}
}
