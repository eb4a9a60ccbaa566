package csi

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// TestPublishHostileQuiet: a hostile Secret manifest and hostile items
// fail NodePublishVolume with a status naming the key path, and neither
// the status nor the plugin's log holds the value.
func TestPublishHostileQuiet(t *testing.T) {
	p := startPlugin(t)
	m := manifesttest.Marker
	for i, tc := range []struct{ body, want string }{
		{"data:\n  password: !!int " + m, "data.password: value tagged !!int"},
		{"stringData:\n  password: !!binary " + m, "stringData.password: value tagged !!binary"},
		{"data: !!binary\n  password: " + m, "data: must be an untagged map"},
		{"stringData:\n  password: " + m + "\n  password: x", "stringData.password: duplicate key"},
		{"stringData:\n  ~: " + m, "stringData: null key"},
	} {
		name := fmt.Sprintf("hostile-%d", i)
		p.writeFile(name+".yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: "+name+", namespace: team}\n"+tc.body+"\n")
		req, _ := p.inline(pod{ns: "team", name: name}, "v", map[string]string{attrSecretName: name}, nil)
		err := p.publish(req)
		wantCode(t, err, codes.FailedPrecondition)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.want) || !strings.Contains(msg, name+".yaml: document 1") || strings.Contains(msg, m) {
			t.Errorf("status %q: want %q, the file, and no value", msg, tc.want)
		}
	}
	for _, tc := range hostileItems[:6] {
		p.writeSecret("team", "s", map[string]string{"a": "x"})
		req, _ := p.inline(pod{ns: "team", name: "items"}, "v", map[string]string{attrSecretName: "s", attrItems: strings.ReplaceAll(tc.items, "M", m)}, nil)
		err := p.publish(req)
		wantCode(t, err, codes.InvalidArgument)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.want) || strings.Contains(msg, m) {
			t.Errorf("status %q: want %q and no value", msg, tc.want)
		}
	}
	// The request log shows the items attribute as sent (it is not a
	// secret); what must never show is the manifests' values.
	for _, line := range strings.Split(p.logs.String(), "\n") {
		if strings.Contains(line, m) && !strings.Contains(line, attrItems) {
			t.Errorf("log line holds a value: %s", line)
		}
	}
}
