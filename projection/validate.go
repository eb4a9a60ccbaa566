package projection

import (
	"fmt"
	"strings"

	"github.com/secretfs/secretfs/secret"
)

// Validate checks a volume source before anything is mounted, so that bad
// input fails early with an error naming the field (items[1].path "..x").
func (s *Spec) Validate() error {
	if s.SecretName == "" {
		return fmt.Errorf("secretName: must not be empty")
	}
	if s.DefaultMode != nil {
		if err := checkMode(*s.DefaultMode); err != nil {
			return fmt.Errorf("defaultMode: %w", err)
		}
	}
	layout := make([]Entry, len(s.Items))
	for i, it := range s.Items {
		if err := secret.ValidateKey(it.Key); err != nil {
			return fmt.Errorf("items[%d].key %q: %w", i, it.Key, err)
		}
		layout[i] = Entry{Path: it.Path, Mode: it.Mode}
	}
	return ValidateLayout("items", layout)
}

// Entry is one file a volume will show: where, and its mode (nil: the
// default).
type Entry struct {
	Path string
	Mode *int32
}

// ValidateLayout checks the files of a volume, wherever they come from (a
// Secret's items, a Secrets Store provider's reply): every path obeys
// ValidatePath, every mode is 0–0777, no path repeats and no file is
// another's folder. what names the list in errors: "items[1].path …".
func ValidateLayout(what string, entries []Entry) error {
	byPath := make(map[string]int, len(entries))
	for i, e := range entries {
		if err := ValidatePath(e.Path); err != nil {
			return fmt.Errorf("%s[%d].%w", what, i, err)
		}
		if e.Mode != nil {
			if err := checkMode(*e.Mode); err != nil {
				return fmt.Errorf("%s[%d].mode: %w (path %s)", what, i, err, quote(e.Path))
			}
		}
		if j, dup := byPath[e.Path]; dup {
			return fmt.Errorf("%s[%d].path %s: same path as %s[%d]", what, i, quote(e.Path), what, j)
		}
		byPath[e.Path] = i
	}
	// A file cannot also be a folder: "a" and "a/b" clash.
	for i, e := range entries {
		for dir := e.Path; ; {
			k := strings.LastIndexByte(dir, '/')
			if k < 0 {
				break
			}
			dir = dir[:k]
			if j, ok := byPath[dir]; ok {
				return fmt.Errorf("%s[%d].path %s: its folder %s is the file of %s[%d]", what, i, quote(e.Path), quote(dir), what, j)
			}
		}
	}
	return nil
}

func checkMode(m int32) error {
	if m < 0 || m > MaxMode {
		return fmt.Errorf("%#o out of range 0-0777", m)
	}
	return nil
}
