//go:build linux

package main

import (
	"bytes"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/secretfs/secretfs/backend/provider"
)

func TestProviderDirFlag(t *testing.T) {
	parse := func(args ...string) ([]string, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := &dirsFlag{dirs: provider.DefaultDirs}
		fs.Var(f, "provider-dir", "")
		return f.dirs, fs.Parse(args)
	}
	if got, _ := parse(); !slices.Equal(got, []string{"/var/run/secrets-store-csi-providers", "/etc/kubernetes/secrets-store-csi-providers"}) {
		t.Errorf("default %v", got)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	f := &dirsFlag{dirs: provider.DefaultDirs}
	fs.Var(f, "provider-dir", "")
	if err := fs.Parse([]string{"--provider-dir", "/a/", "--provider-dir", "/b"}); err != nil || !slices.Equal(f.dirs, []string{"/a", "/b"}) {
		t.Errorf("repeated: %v %v, want [/a /b] (given dirs replace the defaults)", f.dirs, err)
	}
	if !slices.Equal(provider.DefaultDirs, []string{"/var/run/secrets-store-csi-providers", "/etc/kubernetes/secrets-store-csi-providers"}) {
		t.Errorf("the defaults were changed: %v", provider.DefaultDirs)
	}
	if _, err := parse("--provider-dir", "relative"); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative dir: %v", err)
	}
}

func TestProviderMaxRecvFlag(t *testing.T) {
	var stderr bytes.Buffer
	code := runCSI([]string{"--node-id", "n", "--source", "file:" + t.TempDir(), "--provider-max-recv-bytes", "0"}, io.Discard, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "--provider-max-recv-bytes") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
