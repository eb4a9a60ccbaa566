package main

import (
	"fmt"
	"strings"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/backend/file"
	"github.com/secretfs/secretfs/backend/kube"
)

// openSource turns --source into a backend: `file:DIR` or `kube`.
func openSource(src string) (backend.Backend, error) {
	switch {
	case strings.HasPrefix(src, "file:"):
		dir := strings.TrimPrefix(src, "file:")
		if dir == "" {
			return nil, fmt.Errorf("--source %q: file: needs a folder, as file:DIR", src)
		}
		b, err := file.New(dir)
		if err != nil {
			return nil, fmt.Errorf("--source %q: %w", src, err)
		}
		return b, nil
	case src == "kube":
		cfg, err := kube.LoadConfig("")
		if err != nil {
			return nil, fmt.Errorf("--source kube: %w", err)
		}
		b, err := kube.New(cfg, kube.Options{})
		if err != nil {
			return nil, fmt.Errorf("--source kube: %w", err)
		}
		return b, nil
	case src == "":
		return nil, fmt.Errorf("--source is required (file:DIR or kube)")
	}
	return nil, fmt.Errorf("--source %q: unknown source, want file:DIR or kube", src)
}
