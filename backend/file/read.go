package file

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// MaxManifestSize is the largest manifest read (16 MiB). A bigger file is
// refused by its size, before anything of it is read.
const MaxManifestSize = 16 << 20

// leftOut is a file of the folder that is not read at all: not a regular
// file (a FIFO would block the reader forever, a device could do anything
// when opened), or over MaxManifestSize. It is left out like an object of
// another kind; the rest of the folder still serves.
type leftOut struct {
	class  string // "not a regular file" or "too big": what warnings compare
	detail string // for messages: the file type, or the size and limit
}

func (l leftOut) String() string { return l.class + " (" + l.detail + ")" }

// errGone is a file that vanished between listing and reading.
var errGone = errors.New("gone")

// statManifest looks at path without opening it. A symlink is resolved
// first (a mounted ConfigMap's files are links into "..data"), and the file
// it leads to is looked at the same way. errGone: a folder, or nothing
// there, so not a manifest at all; lo: a file that must not be read.
func statManifest(path string) (real string, st syscall.Stat_t, lo *leftOut, err error) {
	real = path
	if err = syscall.Lstat(real, &st); err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		if real, err = filepath.EvalSymlinks(path); err == nil {
			err = syscall.Lstat(real, &st)
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", st, nil, errGone // removed since listing, or a dangling link
	case err != nil:
		return "", st, nil, err
	case st.Mode&syscall.S_IFMT == syscall.S_IFDIR:
		return "", st, nil, errGone // a link to a folder: not a manifest
	}
	return real, st, check(&st), nil
}

// check says why a file whose stat is st must not be read; nil if it may.
func check(st *syscall.Stat_t) *leftOut {
	if t := st.Mode & syscall.S_IFMT; t != syscall.S_IFREG {
		return &leftOut{class: "not a regular file", detail: fileType(t)}
	}
	if st.Size > MaxManifestSize {
		return &leftOut{class: "too big", detail: fmt.Sprintf("%d bytes, over the limit of %d", st.Size, MaxManifestSize)}
	}
	return nil
}

func fileType(t uint32) string {
	switch t {
	case syscall.S_IFIFO:
		return "a FIFO"
	case syscall.S_IFSOCK:
		return "a socket"
	case syscall.S_IFCHR:
		return "a character device"
	case syscall.S_IFBLK:
		return "a block device"
	}
	return "not a regular file"
}

// readManifest reads the regular file real that statManifest looked at.
// It opens without following a link and without blocking, so a file
// swapped for a FIFO or a link since the stat cannot hang the scan, then
// checks the open file again. The buffer is sized once from that check, so
// no copy of the secret bytes is left behind by growing it.
func readManifest(real string) ([]byte, *leftOut, error) {
	fd, err := syscall.Open(real, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, errGone
	case errors.Is(err, syscall.ELOOP):
		return nil, nil, errors.New("replaced by a symbolic link while being read")
	case err != nil:
		return nil, nil, &os.PathError{Op: "open", Path: real, Err: err}
	}
	f := os.NewFile(uintptr(fd), real)
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, nil, &os.PathError{Op: "fstat", Path: real, Err: err}
	}
	if lo := check(&st); lo != nil {
		return nil, lo, nil
	}
	buf := make([]byte, st.Size+1)
	n, err := io.ReadFull(f, buf)
	switch {
	case err == nil:
		// It grew while being read: the write that grows it brings an
		// event, and the next scan reads it whole.
		clear(buf)
		return nil, nil, errors.New("grew while being read")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return buf[:n], nil, nil
	}
	clear(buf)
	return nil, nil, &os.PathError{Op: "read", Path: real, Err: err}
}

// warnings names each left-out file once, and again only when the reason
// changes: every Get and every rescan sees the same files.
type warnings struct {
	mu     sync.Mutex
	warned map[string]string // file → class last warned about
}

func (w *warnings) report(left map[string]leftOut) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.warned == nil {
		w.warned = map[string]string{}
	}
	for _, f := range slices.Sorted(maps.Keys(left)) {
		if lo := left[f]; w.warned[f] != lo.class {
			slog.Warn("file source: file left out", "file", f, "reason", lo.class, "detail", lo.detail)
			w.warned[f] = lo.class
		}
	}
	for f := range w.warned {
		if _, ok := left[f]; !ok {
			delete(w.warned, f)
		}
	}
}
