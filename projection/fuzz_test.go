package projection

import (
	"strings"
	"testing"

	"github.com/secretfs/secretfs/manifest/manifesttest"
	"github.com/secretfs/secretfs/secret"
)

// FuzzItems drives item paths and modes through ParseMode, ValidatePath
// and Project with a Secret whose values are the marker. It must not
// panic; no error may contain a value (paths, keys and modes are named,
// values never); an accepted path or mode obeys the item rules of a secret volume.
func FuzzItems(f *testing.F) {
	for _, seed := range []struct{ key, path, mode, def string }{
		{"a", "a", "0400", ""}, {"a", "x/y/a", "0o777", "0640"}, {"a", "../a", "", ""},
		{"a", "/etc/a", "1000", ""}, {"a", "..data/a", "-1", "+7"}, {"a", "a//b", "8", ""},
		{"b", "a/./b", " 0400 ", ""}, {"a", strings.Repeat("x", 256), "", ""},
		{"..x", "a", "", ""}, {"a", "a\x00b", "0x1ff", ""}, {"missing", "m", "", "0"},
	} {
		f.Add(seed.key, seed.path, seed.mode, seed.def, false)
	}
	f.Fuzz(func(t *testing.T, key, path, mode, def string, optional bool) {
		v := manifesttest.Marker
		spec := &Spec{Namespace: "ns", SecretName: "s", Optional: optional, Items: []Item{{Key: key, Path: path}}}
		var errs []error
		if mode != "" {
			m, err := ParseMode(mode)
			if err == nil {
				if m < 0 || m > MaxMode {
					t.Fatalf("ParseMode(%q) = %#o, out of range", mode, m)
				}
				spec.Items[0].Mode = &m
			}
			errs = append(errs, err)
		}
		if def != "" {
			m, err := ParseMode(def)
			if err == nil {
				spec.DefaultMode = &m
			}
			errs = append(errs, err)
		}
		perr := ValidatePath(path)
		if perr == nil {
			checkAccepted(t, path)
		} else if len(perr.Error()) > 300 {
			t.Fatalf("path error of %d bytes: a long path is cut short", len(perr.Error()))
		}
		sec := &secret.Secret{Namespace: "ns", Name: "s", Data: map[string][]byte{"a": []byte(v), "b": []byte(v + "b")}}
		p, err := Project(spec, sec)
		errs = append(errs, perr, err)
		if err == nil {
			for fp, file := range p.Files {
				if file.Mode > MaxMode {
					t.Fatalf("file %q mode %#o", fp, file.Mode)
				}
			}
		}
		if strings.Contains(key+path+mode+def, v) {
			return // named inputs may be quoted
		}
		for _, e := range errs {
			if e != nil && strings.Contains(e.Error(), v) {
				t.Fatalf("error quotes a value: %v", e)
			}
		}
	})
}

// checkAccepted re-states the item path rules independently of
// ValidatePath: relative, no `..` element, no empty element.
func checkAccepted(t *testing.T, p string) {
	t.Helper()
	elems := strings.Split(p, "/")
	switch {
	case p == "" || strings.HasPrefix(p, "/") || len(p) > 4096 || strings.HasPrefix(elems[0], ".."):
		t.Fatalf("accepted bad path %q", p)
	}
	for _, e := range elems {
		if e == ".." || len(e) > 255 {
			t.Fatalf("accepted bad path %q", p)
		}
	}
}
