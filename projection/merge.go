package projection

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Part is the files one source of a volume of several gives (a projected
// volume's `sources`): Name says which source in errors (`secret
// "ns/db"`), never anything of its data.
type Part struct {
	Name    string
	Payload *Payload
}

// PartError is why one source of a volume of several failed to refresh,
// naming the source (Part.Name), so that a report can say which.
type PartError struct {
	Part string
	Err  error
}

func (e *PartError) Error() string { return e.Part + ": " + e.Err.Error() }
func (e *PartError) Unwrap() error { return e.Err }

// ConflictError says two sources of one volume give the same path, or
// one a file where the other a folder. It names both sources and the
// path, never a value. Callers map it to FailedPrecondition.
type ConflictError struct {
	Path   string // where they clash: the file, or the folder one of them needs
	A, B   string // the parts' Names, in source order
	Folder bool   // A gives a file at Path and B a folder there, or the reverse
}

func (e *ConflictError) Error() string {
	if e.Folder {
		return fmt.Sprintf("sources conflict at path %s: %s and %s give a file and a folder there", quote(e.Path), e.A, e.B)
	}
	return fmt.Sprintf("sources conflict at path %s: %s and %s both give it", quote(e.Path), e.A, e.B)
}

// Merge lays the parts of a volume of several sources into one Payload,
// as kubelet's projected volume does, except that kubelet lets a later
// source silently win a path: here two parts giving one path, or a file
// of one at a folder another needs, are a *ConflictError naming both.
// Within one part, paths were already checked (Spec.Validate,
// ValidateLayout). The file data is shared with the parts.
func Merge(parts []Part) (*Payload, error) {
	out := &Payload{Files: map[string]File{}}
	owner := map[string]int{} // path → index of the part giving the file
	for i, p := range parts {
		if p.Payload == nil {
			continue
		}
		for _, path := range slices.Sorted(maps.Keys(p.Payload.Files)) {
			if j, ok := owner[path]; ok {
				return nil, &ConflictError{Path: path, A: parts[j].Name, B: p.Name}
			}
			owner[path] = i
			out.Files[path] = p.Payload.Files[path]
		}
	}
	out.Sources = owner
	return out, folderClash(parts, owner)
}

// folderClash finds a file that another part's path needs as a folder
// ("a" of one part, "a/b" of another). A clash within one part was
// refused when that part was checked.
func folderClash(parts []Part, owner map[string]int) error {
	for _, path := range slices.Sorted(maps.Keys(owner)) {
		for dir := path; ; {
			k := strings.LastIndexByte(dir, '/')
			if k < 0 {
				break
			}
			dir = dir[:k]
			if j, ok := owner[dir]; ok && j != owner[path] {
				a, b := min(j, owner[path]), max(j, owner[path])
				return &ConflictError{Path: dir, A: parts[a].Name, B: parts[b].Name, Folder: true}
			}
		}
	}
	return nil
}

// PartName names the Secret of s as a source of a volume in errors:
// secret "ns/name".
func (s *Spec) PartName() string { return fmt.Sprintf("secret %q", s.Ref()) }
