package csi

import (
	"strings"
	"testing"

	"github.com/secretfs/secretfs/manifest/manifesttest"
)

// hostileItems are items attributes that YAML decoders quote values for.
var hostileItems = []struct{ name, items, want string }{
	{"mode !!int", "- {key: a, path: a, mode: !!int M}", "[0].mode: value does not fit its tag !!int"},
	{"mode !!float", "- {key: a, path: a, mode: !!float M}", "[0].mode: value does not fit its tag !!float"},
	{"mode !!bool", "- {key: a, path: a, mode: !!bool M}", "[0].mode: value does not fit its tag !!bool"},
	{"mode !!null", "- {key: a, path: a, mode: !!null M}", "[0].mode: value does not fit its tag !!null"},
	{"mode !!binary", "- {key: a, path: a, mode: !!binary M}", "[0].mode: !!binary values are not supported"},
	{"mode !!timestamp", "- {key: a, path: a, mode: !!timestamp M}", "[0].mode: values tagged !!timestamp are not supported"},
	{"mode a list", "- {key: a, path: a, mode: [M]}", "[0].mode: must be an integer or an octal string"},
	{"mode a map", "- {key: a, path: a, mode: {x: M}}", "[0].mode: must be an integer or an octal string"},
	{"mode float", "[{\"key\": \"a\", \"path\": \"a\", \"mode\": 1.5}]", "[0].mode: must be an integer"},
	{"key a map", "- {key: {x: M}, path: a}", "[0].key: must be a string"},
	{"path !!binary", "- {key: a, path: !!binary M}", "[0].path: !!binary values are not supported"},
	{"duplicate key", "- {key: a, path: a, mode: 0400, mode: M}", "[0].mode: duplicate key"},
	{"duplicate in JSON", `[{"key": "a", "path": "M", "path": "b"}]`, "[0].path: duplicate key"},
	{"complex key", "- {key: a, path: a, ? [M]: x}", "[0]: complex key"},
	{"null key", "- {key: a, path: a, ~: M}", "[0]: null key"},
	{"int key", "- {key: a, path: a, 1: M}", "[0]: key is a !!int"},
	{"tagged list", "!!set {M: x}", "a map tagged !!set"},
	{"not a list", "{key: M}", "not a list of {key, path, mode}"},
	{"two documents", "- {key: a, path: a}\n---\n- M", "more than one YAML document"},
	{"syntax", "- {key: a, path: \"M", "invalid YAML syntax"},
	{"syntax with line", "- {key: a, path: a}\n- key: a\n   path: M: c\n", "invalid YAML syntax at line 3"},
	{"alias", "- {key: a, path: *M}", "invalid YAML syntax"},
}

func itemsVC(items string) map[string]string {
	return map[string]string{
		attrSecretName: "s", attrItems: items,
		podNamespaceKey: "team", ephemeralKey: "true",
		tokensKey: `{"aud":{"token":"` + manifesttest.Marker + `t"}}`,
	}
}

func TestItemsStrictAndQuiet(t *testing.T) {
	m := manifesttest.Marker
	for _, tc := range hostileItems {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAttributes(itemsVC(strings.ReplaceAll(tc.items, "M", m)), false, "")
			if err == nil || !strings.Contains(err.Error(), "volume attribute items: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), m) {
				t.Errorf("error %q leaks the value", err)
			}
		})
	}
	// kubectl's reading of YAML 1.1 stays: a leading 0 is octal.
	a, err := ParseAttributes(itemsVC("- {key: a, path: x/a, mode: 0440}\n- key: b\n  path: b\n  mode: '600'\n"), false, "")
	if err != nil || *a.Spec.Items[0].Mode != 0o440 || *a.Spec.Items[1].Mode != 0o600 {
		t.Fatalf("got %+v, %v", a, err)
	}
}

// FuzzParseAttributes feeds volume attributes to the parser. Whatever they
// are, it must not panic, no error may contain the pod's token, and none
// may contain the marker planted in items unless it sits where errors name
// things (a key, a tag, an item's key, path or mode).
func FuzzParseAttributes(f *testing.F) {
	m := manifesttest.Marker
	for _, tc := range hostileItems {
		f.Add(strings.ReplaceAll(tc.items, "M", m), "0644", "false", "", false, "")
	}
	f.Add(`[{"key":"a","path":"x/a","mode":256}]`, "0400", "true", "1m", true, "1000")
	f.Add("- key: a\n  path: a\n  mode: 0400 # "+m+"\n", "", "", "", false, "")
	f.Fuzz(func(t *testing.T, items, defaultMode, optional, ttl string, ours bool, group string) {
		vc := itemsVC(items)
		for k, v := range map[string]string{attrDefaultMode: defaultMode, attrOptional: optional, attrTTL: ttl} {
			if v != "" {
				vc[k] = v
			}
		}
		_, err := ParseAttributes(vc, ours, group)
		if err == nil {
			return
		}
		if strings.Contains(err.Error(), m+"t") {
			t.Fatalf("error quotes the pod's token: %v", err)
		}
		for _, other := range []string{defaultMode, optional, ttl, group} {
			if strings.Contains(other, m) {
				return // these are quoted as the names they are
			}
		}
		if strings.Contains(items, m) && !manifesttest.Named([]byte(items), m, "key", "path", "mode") && strings.Contains(err.Error(), m) {
			t.Fatalf("error quotes a value of items: %v", err)
		}
	})
}
