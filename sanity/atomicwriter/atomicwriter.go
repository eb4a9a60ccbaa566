package atomicwriter

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	dataLink    = "..data"
	newDataLink = "..data_tmp"
)

// Write makes files (paths relative to dir, "/"-separated; a nested
// path's first element becomes a folder) the current version of dir, as
// kubelet's AtomicWriter.Write does:
//  1. write them into a new folder `..<timestamp>.<random>`;
//  2. link `..data_tmp` to it and rename that over `..data` (the switch);
//  3. link each top-level name to `..data/name` where it is missing;
//  4. remove the old version folder, then the links of names gone.
func Write(dir string, files map[string][]byte) error {
	old, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	top := map[string]bool{}
	for p, b := range files {
		top[strings.SplitN(p, "/", 2)[0]] = true
		full := filepath.Join(ts, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			return err
		}
	}
	tmp := filepath.Join(dir, newDataLink)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		return err
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join(dataLink, name), link); err != nil {
				return err
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			return err
		}
	}
	return removeGone(dir, top)
}

// removeGone removes the top-level links of names the version lacks.
func removeGone(dir string, top map[string]bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") && !top[e.Name()] && e.Type()&os.ModeSymlink != 0 {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
