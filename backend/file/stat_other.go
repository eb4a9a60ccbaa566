//go:build !unix

package file

import (
	"io/fs"
	"os"
)

// On Windows (and any other system without a Unix stat) a file has no
// inode number or ctime that os exposes: the stamp stays zero, so a parse
// is never remembered and each scan parses every manifest again. The
// workstation tool reads a folder once per Get; nothing here serves
// hundreds of volumes.

// lstat looks at path without following a link; errors do not repeat
// the path.
func lstat(path string) (fileStat, error) {
	fi, err := os.Lstat(path)
	if pe, ok := err.(*fs.PathError); ok {
		return fileStat{}, pe.Err // the scan names the file itself
	} else if err != nil {
		return fileStat{}, err
	}
	return statOf(fi), nil
}

// openManifest opens real for reading and stats the open file. Windows
// has no O_NOFOLLOW: a link swapped in since the stat is caught by looking
// at the path again once it is open. FIFOs do not live in folders there.
func openManifest(real string) (*os.File, fileStat, error) {
	f, err := os.Open(real)
	if err != nil {
		return nil, fileStat{}, err
	}
	fi, err := f.Stat()
	if err == nil {
		var li fs.FileInfo
		if li, err = os.Lstat(real); err == nil && li.Mode().Type() == fs.ModeSymlink {
			err = errReplacedByLink
		}
	}
	if err != nil {
		f.Close()
		return nil, fileStat{}, err
	}
	return f, statOf(fi), nil
}

func statOf(fi fs.FileInfo) fileStat {
	return fileStat{typ: fi.Mode().Type(), size: fi.Size(), changed: fi.ModTime()}
}
