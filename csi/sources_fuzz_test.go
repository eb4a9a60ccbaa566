package csi

import (
	"strings"
	"testing"

	"github.com/secretfs/secretfs/manifest/manifesttest"
)

// hostileSources are `sources` attributes that YAML decoders quote values
// for, and the part of the message that must name the place instead.
var hostileSources = []struct{ name, sources, want string }{
	{"name !!int", "- secret: {name: !!int M}", "[0].secret.name: value does not fit its tag !!int"},
	{"name a list", "- secret: {name: [M]}", "[0].secret.name: must be a string"},
	{"optional a string", "- secret: {name: a, optional: M}", "[0].secret.optional: must be true or false"},
	{"secret a string", "- secret: M", "[0].secret: not a map of name, items, optional"},
	{"class a list", "- secretProviderClass: [M]", "[0].secretProviderClass: not a map with a name"},
	{"item mode !!binary", "- secret: {name: a, items: [{key: a, path: a, mode: !!binary M}]}", "mode: !!binary values are not supported"},
	{"duplicate name", "- secret: {name: a, name: M}", "[0].secret.name: duplicate key"},
	{"not a list", "{secret: M}", "not a list of sources"},
	{"a list of strings", "[M]", "not a list of sources"},
	{"syntax", "- secret: {name: \"M", "invalid YAML syntax"},
	{"alias", "- secret: {name: *M}", "invalid YAML syntax"},
}

func sourcesVC(sources string) map[string]string {
	return map[string]string{
		attrSources: sources, podNamespaceKey: "team", ephemeralKey: "true",
		tokensKey: `{"aud":{"token":"` + manifesttest.Marker + `t"}}`,
	}
}

// Hostile `sources` fail with InvalidArgument's message naming the
// place, never the value.
func TestSourcesStrictAndQuiet(t *testing.T) {
	m := manifesttest.Marker
	for _, tc := range hostileSources {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAttributes(sourcesVC(strings.ReplaceAll(tc.sources, "M", m)), false, "")
			if err == nil || !strings.HasPrefix(err.Error(), "volume attribute sources: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), m) {
				t.Errorf("error %q leaks the value", err)
			}
		})
	}
}

// FuzzParseSources feeds `sources` to the parser: no panic, the pod's
// token never in an error, and the marker only where errors name things
// (a field, a tag, a name, an item's key, path or mode).
func FuzzParseSources(f *testing.F) {
	m := manifesttest.Marker
	for _, tc := range hostileSources {
		f.Add(strings.ReplaceAll(tc.sources, "M", m), "")
	}
	f.Add(`[{"secret": {"name": "db", "items": [{"key": "a", "path": "x/a", "mode": 256}], "optional": true}}, {"secretProviderClass": {"name": "c"}}]`, "0400")
	f.Add("- secret:\n    name: a\n    itemz: "+m+"\n", "")
	f.Fuzz(func(t *testing.T, sources, defaultMode string) {
		vc := sourcesVC(sources)
		if defaultMode != "" {
			vc[attrDefaultMode] = defaultMode
		}
		a, err := ParseAttributes(vc, false, "")
		if err == nil {
			if len(a.Sources) == 0 {
				t.Fatalf("accepted without a source")
			}
			for _, s := range a.Sources {
				if (s.Secret == nil) == (s.Class == "") {
					t.Fatalf("a source that is not exactly one of secret and class: %+v", s)
				}
			}
			return
		}
		if strings.Contains(err.Error(), m+"t") {
			t.Fatalf("error quotes the pod's token: %v", err)
		}
		if strings.Contains(defaultMode, m) {
			return
		}
		if strings.Contains(sources, m) && !manifesttest.Named([]byte(sources), m, "name", "key", "path", "mode") && strings.Contains(err.Error(), m) {
			t.Fatalf("error quotes a value of sources: %v", err)
		}
	})
}
