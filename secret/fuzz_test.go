package secret

import (
	"bytes"
	"strings"
	"testing"

	"github.com/secretfs/secretfs/manifest/manifesttest"
)

// FuzzParseManifests feeds manifest files to the parser. Whatever the
// text, it must not panic, and no error may contain the marker value
// unless the marker sits where errors name things (a key, a tag, an
// object's kind, name, namespace or type). The seeds plant the marker in
// values: tagged ones, duplicate keys, complex keys, broken syntax.
func FuzzParseManifests(f *testing.F) {
	m := manifesttest.Marker
	for _, tc := range hostile {
		f.Add([]byte("apiVersion: v1\nkind: Secret\nmetadata: {name: m}\n" + strings.ReplaceAll(tc.body, marker, m) + "\n"))
	}
	f.Add([]byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"m"},"data":{"a":"` + m + `","a":"x"}}`))
	f.Add([]byte("kind: SecretList\nitems:\n- metadata: {name: m}\n  stringData: {a: !!float " + m + "}\n"))
	f.Add([]byte("kind: Secret\nmetadata: {name: m}\ndata: {a: " + m + "}\n")) // not base64
	f.Add([]byte("kind: Secret\nmetadata: {name: m}\ntype: kubernetes.io/dockercfg\nstringData: {.dockercfg: '{\"" + m + "'}\n"))
	f.Add([]byte("kind: Secret\nmetadata: {name: m}\nstringData: {a: \"" + m + "\n"))
	f.Add([]byte(`{"kind": "Secret", "metadata": {"name": "m"}, "stringData": {"a": "\/` + m + `", "b": 5}}`))
	f.Add([]byte(`[{"kind": "Secret"}] {"kind": "SecretList", "items": [{"metadata": {"name": "m"}, "data": {"a": "` + m + `"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParseManifests(data, "f.yaml")
		if !bytes.Contains(data, []byte(m)) || manifesttest.Named(data, m, "kind", "apiVersion", "name", "namespace", "type") {
			return
		}
		if err != nil && strings.Contains(err.Error(), m) {
			t.Fatalf("file error quotes a value: %v", err)
		}
		for _, p := range ps {
			if p.Err != nil && strings.Contains(p.Err.Error(), m) {
				t.Fatalf("error quotes a value: %v", p.Err)
			}
		}
	})
}
