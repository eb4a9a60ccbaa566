package envdir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/secretfs/secretfs/secret"
)

// DataLink is the atomic writer's link to the current version.
const DataLink = "..data"

// MaxFile is the largest file Read takes: a Secret holds at most 1 MiB.
const MaxFile = 1 << 20

// tries bounds how often Read starts again because `..data` moved.
const tries = 10

// Vars is what a volume gives as variables.
type Vars struct {
	Vars    []secret.EnvVar // sorted by name
	Skipped []string        // names not valid as variables, or whose value holds a NUL byte
	Version string          // what `..data` pointed to; "" without one
}

// Read returns the variables of dir: each top-level regular file (links
// followed) whose name is a valid variable name; dotfiles and folders
// are left out, other names and values with a NUL byte are Skipped.
func Read(dir string) (Vars, error) {
	for range tries {
		before, err := os.Readlink(filepath.Join(dir, DataLink))
		if errors.Is(err, os.ErrNotExist) {
			return readFolder(dir, "")
		}
		if err != nil {
			return Vars{}, fmt.Errorf("%s: %w", DataLink, err)
		}
		// The version folder itself, not the top-level links: kubelet
		// makes new links only after ..data switched.
		version := before
		if !filepath.IsAbs(version) {
			version = filepath.Join(dir, before)
		}
		v, err := readFolder(version, before)
		after, err2 := os.Readlink(filepath.Join(dir, DataLink))
		if err2 == nil && after == before {
			return v, err
		}
		// It switched under the read: the old folder may be gone (kubelet
		// removes it at once) or half read. Read the new one.
	}
	return Vars{}, fmt.Errorf("%s: %s switched %d times while reading", dir, DataLink, tries)
}

func readFolder(dir, version string) (Vars, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Vars{}, fmt.Errorf("read folder: %w", err)
	}
	v := Vars{Version: version}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue // ..data, ..<timestamp>, dotfiles: never variables
		}
		b, isFile, err := readFile(filepath.Join(dir, name))
		switch {
		case err != nil:
			return Vars{}, err
		case !isFile:
			continue // a folder (an item path's first element)
		case !secret.IsEnvName(name) || bytes.IndexByte(b, 0) >= 0:
			v.Skipped = append(v.Skipped, name)
		default:
			v.Vars = append(v.Vars, secret.EnvVar{Name: name, Value: b})
		}
	}
	slices.SortFunc(v.Vars, func(a, b secret.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(v.Skipped)
	return v, nil
}

// readFile reads a regular file (links followed) of at most MaxFile
// bytes; isFile is false for anything else.
func readFile(path string) (b []byte, isFile bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", filepath.Base(path), unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, false, nil
	}
	b, err = io.ReadAll(io.LimitReader(f, MaxFile+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", filepath.Base(path), unwrapPath(err))
	}
	if len(b) > MaxFile {
		return nil, false, fmt.Errorf("%s is over %d bytes", filepath.Base(path), MaxFile)
	}
	return b, true, nil
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
