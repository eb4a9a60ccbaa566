package file

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/secret"
)

// ErrUnreachable is wrapped by Get when the answer cannot be trusted: the
// folder is unreadable or a manifest does not parse. It is deliberately not
// ErrNotFound, so a broken file never looks like a deleted Secret.
var ErrUnreachable = errors.New("file source unreachable")

// ErrDuplicate is wrapped by Get when a Secret is defined more than once.
var ErrDuplicate = errors.New("secret defined more than once")

type key struct{ namespace, name string }

// found is one definition of a Secret: the parsed object or its
// *secret.InvalidError, and the file it came from.
type found struct {
	file string
	sec  *secret.Secret
	err  error
}

// scan is one consistent reading of the whole folder.
type scan struct {
	dir    string
	dirErr error              // the folder itself could not be listed
	broken map[string]error   // file path → why it could not be read or parsed
	left   map[string]leftOut // file path → why it was not read at all
	objs   map[key][]found
}

// isManifest picks the manifests of the folder: *.yaml, *.yml and *.json,
// directly in it. Hidden files are skipped: they
// are editors' temporaries or the "..data" links of a mounted ConfigMap.
func isManifest(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch filepath.Ext(name) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// readDir parses every manifest directly in dir (not recursive); files
// unchanged since an earlier scan are not parsed again.
func (b *Backend) readDir() *scan {
	dir := b.dir
	s := &scan{dir: dir, broken: map[string]error{}, left: map[string]leftOut{}, objs: map[key][]found{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.dirErr = err
		return s
	}
	seen := map[string]bool{}
	defer b.parsed.keep(seen)
	defer b.warned.report(s.left)
	// A file changed within the last moment may change again within the
	// same timestamp tick (coarse clocks: NFS, some overlays) without its
	// stamp changing: such a parse is used but not remembered.
	settled := time.Now().Add(-50 * time.Millisecond)
	for _, e := range entries {
		if !isManifest(e.Name()) || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		real, st, lo, err := statManifest(path)
		if !s.readable(path, lo, err) {
			continue
		}
		if parsed, ok := b.parsed.get(path, st.stamp); ok {
			seen[path] = true
			s.add(path, parsed)
			continue
		}
		data, lo, err := readManifest(real)
		if !s.readable(path, lo, err) {
			continue
		}
		parsed, err := secret.ParseManifests(data, path)
		clear(data) // the raw manifest holds secret values
		if err != nil {
			s.broken[path] = err
			continue
		}
		// Remember the parse under the stamp taken before reading: a
		// write during the read changes ctime, so it is read again.
		if st.stamp.ino != 0 && st.changed.Before(settled) {
			b.parsed.put(path, st.stamp, parsed)
			seen[path] = true
		}
		s.add(path, parsed)
	}
	return s
}

// readable notes why path was not read (broken or left out) and says
// whether the scan goes on with it; a file gone since listing is skipped
// silently.
func (s *scan) readable(path string, lo *leftOut, err error) bool {
	switch {
	case errors.Is(err, errGone):
		return false
	case err != nil:
		s.broken[path] = err
		return false
	case lo != nil:
		s.left[path] = *lo
		return false
	}
	return true
}

func (s *scan) add(path string, parsed []secret.Parsed) {
	for _, p := range parsed {
		k := key{p.Namespace, p.Name}
		s.objs[k] = append(s.objs[k], found{file: path, sec: p.Secret, err: p.Err})
	}
}

// lookup answers Get from one scan; see Backend.Get for the rules.
func (s *scan) lookup(ref backend.Ref) (*secret.Secret, error) {
	defs := s.objs[key{ref.Namespace, ref.Name}]
	switch {
	case len(defs) > 1:
		files := make([]string, len(defs))
		for i, d := range defs {
			files[i] = d.file
		}
		return nil, fmt.Errorf("secret %s: %w: in %s", ref, ErrDuplicate, strings.Join(files, " and "))
	case len(defs) == 1:
		return defs[0].sec, defs[0].err
	case s.dirErr != nil:
		return nil, fmt.Errorf("secret %s: %w: %w", ref, ErrUnreachable, s.dirErr)
	case len(s.broken) > 0:
		// The Secret may be in the file we cannot read: say so, and name it.
		files := make([]string, 0, len(s.broken))
		for f := range s.broken {
			files = append(files, f)
		}
		sort.Strings(files)
		return nil, fmt.Errorf("secret %s: %w: cannot read %s: %w", ref, ErrUnreachable, files[0], s.broken[files[0]])
	}
	return nil, fmt.Errorf("secret %s: not in any manifest in %s%s: %w", ref, s.dir, s.leftOutNote(), backend.ErrNotFound)
}

// leftOutNote names the files a not-found answer did not look into.
func (s *scan) leftOutNote() string {
	if len(s.left) == 0 {
		return ""
	}
	files := make([]string, 0, len(s.left))
	for f := range s.left {
		files = append(files, f)
	}
	sort.Strings(files)
	note := " (left out:"
	for i, f := range files {
		if i > 0 {
			note += ","
		}
		note += " " + f + " " + s.left[f].String()
	}
	return note + ")"
}
