package volume

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
	byPath := make(map[string]int, len(s.Items))
	for i, it := range s.Items {
		if err := secret.ValidateKey(it.Key); err != nil {
			return fmt.Errorf("items[%d].key %q: %w", i, it.Key, err)
		}
		if err := ValidatePath(it.Path); err != nil {
			return fmt.Errorf("items[%d].%w", i, err)
		}
		if it.Mode != nil {
			if err := checkMode(*it.Mode); err != nil {
				return fmt.Errorf("items[%d].mode: %w", i, err)
			}
		}
		if j, dup := byPath[it.Path]; dup {
			return fmt.Errorf("items[%d].path %s: same path as items[%d]", i, quote(it.Path), j)
		}
		byPath[it.Path] = i
	}
	// A file cannot also be a folder: "a" and "a/b" clash.
	for i, it := range s.Items {
		for dir := it.Path; ; {
			k := strings.LastIndexByte(dir, '/')
			if k < 0 {
				break
			}
			dir = dir[:k]
			if j, ok := byPath[dir]; ok {
				return fmt.Errorf("items[%d].path %s: its folder %s is the file of items[%d]", i, quote(it.Path), quote(dir), j)
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
