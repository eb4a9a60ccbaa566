package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

const installSynopsis = `secretfs install DEST

Copies this secretfs binary to DEST (a file, or a folder to put
"secretfs" in), executable. For an init container: our image holds
nothing but the static binary, no cp; the app container then runs
/DEST/secretfs exec from a shared emptyDir (deploy/examples/exec/).`

func init() {
	commands["install"] = command{"copy this binary to DEST (an init container's way to hand it to the app container)", runInstall}
}

func runInstall(args []string, _, stderr io.Writer) int {
	fs := newFlagSet("install", installSynopsis, stderr)
	pos, _, err := parseInterleaved(fs, args)
	if err != nil {
		return fs.fail(err)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "secretfs install: want exactly one DEST, got %d arguments\n", len(pos))
		return 2
	}
	if err := install(pos[0]); err != nil {
		fmt.Fprintf(stderr, "secretfs install: %v\n", err)
		return 1
	}
	return 0
}

// install writes a copy of the running binary next to dest, then renames
// it into place, so that a reader never runs half a binary.
func install(dest string) error {
	if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
		dest = filepath.Join(dest, "secretfs")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	in, err := os.Open(self)
	if err != nil {
		return fmt.Errorf("open this binary: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".secretfs-*")
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Dir(dest), errors.Unwrap(err))
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing
	_, err = io.Copy(tmp, in)
	err = errors.Join(err, tmp.Chmod(0o755), tmp.Close())
	if err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("rename to %s: %w", dest, errors.Unwrap(err))
	}
	return nil
}
