//go:build unix

package file

import (
	"errors"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lstat looks at path without following a link.
func lstat(path string) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileStat{}, err // the scan names the file itself
	}
	return statOf(&st), nil
}

// openManifest opens real for reading without following a link and
// without blocking (a FIFO swapped in since the stat opens at once and is
// then refused by its stat), and stats the open file.
func openManifest(real string) (*os.File, fileStat, error) {
	fd, err := unix.Open(real, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, fileStat{}, errReplacedByLink
	case err != nil:
		return nil, fileStat{}, &os.PathError{Op: "open", Path: real, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fileStat{}, &os.PathError{Op: "fstat", Path: real, Err: err}
	}
	return os.NewFile(uintptr(fd), real), statOf(&st), nil
}

// statOf keeps what a scan needs. The field types differ between systems
// (Dev is uint64 on Linux, int32 on macOS; Mode uint32 or uint16): the
// conversions make one body fit both.
func statOf(st *unix.Stat_t) fileStat {
	return fileStat{
		typ:     typeOf(uint32(st.Mode)),
		size:    st.Size,
		changed: time.Unix(st.Ctim.Unix()),
		stamp: stamp{dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size,
			mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()},
	}
}

func typeOf(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}
