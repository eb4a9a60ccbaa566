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
	"time"
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

// errReplacedByLink is a manifest swapped for a symbolic link between its
// stat and its open.
var errReplacedByLink = errors.New("replaced by a symbolic link while being read")

// fileStat is what a scan needs of a file's stat, on every system
// (stat_unix.go, stat_other.go).
type fileStat struct {
	typ  fs.FileMode // the type bits only: 0 for a regular file
	size int64
	// stamp tells two contents of the file apart; a zero ino means the
	// system gives no stamp to trust, and the parse is never remembered.
	stamp stamp
	// changed is when the content or the inode last changed: ctime where
	// the system has it, else mtime.
	changed time.Time
}

// statManifest looks at path without opening it. A symlink is resolved
// first (a mounted ConfigMap's files are links into "..data"), and the file
// it leads to is looked at the same way. errGone: a folder, or nothing
// there, so not a manifest at all; lo: a file that must not be read.
func statManifest(path string) (real string, st fileStat, lo *leftOut, err error) {
	real = path
	if st, err = lstat(real); err == nil && st.typ == fs.ModeSymlink {
		if real, err = filepath.EvalSymlinks(path); err == nil {
			st, err = lstat(real)
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", st, nil, errGone // removed since listing, or a dangling link
	case err != nil:
		return "", st, nil, err
	case st.typ == fs.ModeDir:
		return "", st, nil, errGone // a link to a folder: not a manifest
	}
	return real, st, check(st), nil
}

// check says why a file whose stat is st must not be read; nil if it may.
func check(st fileStat) *leftOut {
	if st.typ != 0 {
		return &leftOut{class: "not a regular file", detail: fileType(st.typ)}
	}
	if st.size > MaxManifestSize {
		return &leftOut{class: "too big", detail: fmt.Sprintf("%d bytes, over the limit of %d", st.size, MaxManifestSize)}
	}
	return nil
}

func fileType(t fs.FileMode) string {
	switch {
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

// readManifest reads the regular file real that statManifest looked at.
// It opens without following a link and without blocking (openManifest),
// so a file swapped for a FIFO or a link since the stat cannot hang the
// scan, then checks the open file again. The buffer is sized once from
// that check, so no copy of the secret bytes is left behind by growing it.
func readManifest(real string) ([]byte, *leftOut, error) {
	f, st, err := openManifest(real)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, errGone
	case err != nil:
		return nil, nil, err
	}
	defer f.Close()
	if lo := check(st); lo != nil {
		return nil, lo, nil
	}
	buf := make([]byte, st.size+1)
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
