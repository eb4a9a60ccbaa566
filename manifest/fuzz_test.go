package manifest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/secretfs/secretfs/manifest"
	"github.com/secretfs/secretfs/manifest/manifesttest"
)

// FuzzYAMLToJSON: whatever the text, no panic; accepted text becomes
// valid JSON; an error names no value (only keys, tags and anchors may
// hold the marker and be named).
func FuzzYAMLToJSON(f *testing.F) {
	m := manifesttest.Marker
	for _, s := range []string{
		"a: !!int M", "a: !!binary M", "data: {a: !!float M}", "data: !!set {M: x}", "a: M\na: x",
		"? [M]\n: x", "~: M", "a: &x [*x, M]", "- {key: a, mode: 0400, path: M}", "{\"a\": \"M\", \"a\": 1}",
		"a: \"M", "a: 1\n---\nb: M", `{"a": "\/M", "a": 1}`, `{"data": {"k": 5, "M": true}}`, `[1, {"x": "M"}] {"y": null}`, "data: {a: yes, b: M}", "a: !!timestamp M", "a: .nan # M",
	} {
		f.Add(strings.ReplaceAll(s, "M", m))
	}
	opt := manifest.Options{StringMaps: []string{"data"}}
	f.Fuzz(func(t *testing.T, text string) {
		js, err := manifest.YAMLToJSON([]byte(text), opt)
		if err == nil {
			if !json.Valid(js) {
				t.Fatalf("invalid JSON %q from %q", js, text)
			}
			return
		}
		if strings.Contains(err.Error(), m) && !manifesttest.Named([]byte(text), m) {
			t.Fatalf("error quotes a value: %v", err)
		}
	})
}
