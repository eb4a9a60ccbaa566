//go:build linux

package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/backend/kube"
	"github.com/secretfs/secretfs/backend/provider"
)

// dirsFlag is a repeatable folder flag; given once, it replaces the
// defaults instead of adding to them.
type dirsFlag struct {
	dirs []string
	set  bool
}

func (f *dirsFlag) String() string { return strings.Join(f.dirs, ",") }

func (f *dirsFlag) Set(s string) error {
	if !filepath.IsAbs(s) {
		return fmt.Errorf("%q: not an absolute path", s)
	}
	if !f.set {
		f.dirs, f.set = nil, true
	}
	f.dirs = append(f.dirs, filepath.Clean(s))
	return nil
}

// openProviders serves secretProviderClass volumes: classes are read
// through the plugin's source (the file source's own folder; for kube, a
// client with the plugin's identity), providers reached in dirs.
func openProviders(source string, b backend.Backend, dirs []string, maxRecv int, log *slog.Logger) (*provider.Pool, *provider.Client, error) {
	var classes backend.ClassReader
	if cr, ok := b.(backend.ClassReader); ok {
		classes = cr
	} else if source == "kube" {
		cfg, err := kube.LoadConfig("")
		if err != nil {
			return nil, nil, fmt.Errorf("--source kube: %w", err)
		}
		if classes, err = kube.NewClasses(cfg); err != nil {
			return nil, nil, fmt.Errorf("--source kube: %w", err)
		}
	} else {
		return nil, nil, nil
	}
	if maxRecv <= 0 {
		return nil, nil, fmt.Errorf("--provider-max-recv-bytes: %d is not a positive size", maxRecv)
	}
	c := provider.NewClient(provider.ClientOptions{Dirs: dirs, MaxRecvBytes: maxRecv, Logger: log})
	return provider.NewPool(c, classes, log), c, nil
}
