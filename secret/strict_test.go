package secret

import (
	"strings"
	"testing"
)

// marker stands for a secret value: no error may contain it.
const marker = "Zq7xK9mW2vRt4pLs8nBdQ3"

// hostile are Secret bodies that decoders quote values for, or that YAML
// reads as something other than a map of strings. want is the key path
// the error must name.
var hostile = []struct{ name, body, want string }{
	{"data !!int", "data:\n  password: !!int " + marker, "data.password: value tagged !!int"},
	{"data !!float", "data:\n  password: !!float " + marker, "data.password: value tagged !!float"},
	{"data !!bool", "data:\n  password: !!bool " + marker, "data.password: value tagged !!bool"},
	{"data !!timestamp", "data:\n  password: !!timestamp " + marker, "data.password: value tagged !!timestamp"},
	{"data !!null", "data:\n  password: !!null " + marker, "data.password: value tagged !!null"},
	{"data !!binary", "data:\n  password: !!binary " + marker, "data.password: value tagged !!binary"},
	{"data !!map on a string", "data:\n  password: !!map " + marker, "data.password: value tagged !!map"},
	{"data custom tag", "data:\n  password: !" + marker + " " + marker, "data.password: value tagged a custom tag"},
	{"stringData !!int", "stringData:\n  password: !!int " + marker, "stringData.password: value tagged !!int"},
	{"stringData !!float", "stringData:\n  password: !!float " + marker, "stringData.password: value tagged !!float"},
	{"stringData !!bool", "stringData:\n  password: !!bool " + marker, "stringData.password: value tagged !!bool"},
	{"stringData !!timestamp", "stringData:\n  password: !!timestamp " + marker, "stringData.password: value tagged !!timestamp"},
	{"stringData !!null", "stringData:\n  password: !!null " + marker, "stringData.password: value tagged !!null"},
	{"stringData !!binary", "stringData:\n  password: !!binary " + marker, "stringData.password: value tagged !!binary"},
	{"stringData !!seq", "stringData:\n  password: !!seq [" + marker + "]", "stringData.password: value must be a string"},
	{"tag on data", "data: !!binary\n  password: " + marker, "data: must be an untagged map"},
	{"tag on stringData", "stringData: !!omap\n  password: " + marker, "stringData: must be an untagged map"},
	{"data is a tagged string", "data: !!str " + marker, "data: must be a map"},
	{"duplicate key", "data:\n  password: " + marker + "\n  password: " + marker + "x", "data.password: duplicate key"},
	{"duplicate stringData key", "stringData:\n  password: a\n  password: " + marker, "stringData.password: duplicate key"},
	{"duplicate top-level key", "data:\n  a: " + marker + "\ndata:\n  b: " + marker, "data: duplicate key"},
	{"complex key", "data:\n  ? [" + marker + "]\n  : " + marker, "data: complex key"},
	{"map key", "stringData:\n  {" + marker + ": x}: " + marker, "stringData: complex key"},
	{"null key", "data:\n  ~: " + marker, "data: null key"},
	{"empty key", "stringData:\n  ?\n  : " + marker, "stringData: null key"},
	{"int key", "stringData:\n  1: " + marker, "stringData: key is a !!int"},
	{"bool key", "stringData:\n  true: " + marker, "stringData: key is a !!bool"},
	{"yes key", "stringData:\n  yes: " + marker, "stringData: key reads as a !!bool"},
	{"float key", "stringData:\n  1.5: " + marker, "stringData: key is a !!float"},
	{"merge key", "stringData:\n  <<: {a: " + marker + "}", "stringData: merge key"},
	{"list value", "stringData:\n  password: [" + marker + "]", "stringData.password: value must be a string"},
	{"map value", "data:\n  password: {a: " + marker + "}", "data.password: value must be a string"},
	{"alias loop", "stringData:\n  a: " + marker + "\nextra: &x [*x]", "alias refers to itself"},
	{"annotation !!binary", "stringData: {a: b}\nmetadata2: !!binary " + marker, "metadata2: !!binary values are not supported"},
}

func TestStrictManifests(t *testing.T) {
	for _, tc := range hostile {
		t.Run(tc.name, func(t *testing.T) {
			doc := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n---\n" +
				"apiVersion: v1\nkind: Secret\nmetadata:\n  name: m\n  namespace: ns\n" + tc.body + "\n"
			ps, err := ParseManifests([]byte(doc), "deploy/x.yaml")
			if err != nil {
				t.Fatalf("file error %v, want the Secret's own error", err)
			}
			if len(ps) != 1 || ps[0].Secret != nil || ps[0].Name != "m" || ps[0].Namespace != "ns" {
				t.Fatalf("got %+v, want one invalid Secret ns/m", ps)
			}
			msg := ps[0].Err.Error()
			for _, want := range []string{`"ns/m"`, "deploy/x.yaml: document 2", tc.want, "(line "} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if strings.Contains(msg, marker) {
				t.Errorf("error %q leaks the value", msg)
			}
		})
	}
}

// When the object's name itself is ambiguous the whole document fails: a
// per-Secret error could not be matched to the Secret asked for.
func TestStrictIdentity(t *testing.T) {
	for _, body := range []string{
		"metadata:\n  name: m\n  name: " + marker + "\ndata: {a: !!int " + marker + "}",
		"metadata: {name: m}\nmetadata: {name: n}\ndata: {a: !!int " + marker + "}",
		"kind: Secret\nmetadata: {name: m}",
	} {
		doc := "apiVersion: v1\nkind: Secret\n" + body + "\n"
		_, err := ParseManifests([]byte(doc), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), "x.yaml: document 1") || !strings.Contains(err.Error(), "duplicate key") {
			t.Errorf("%q: got %v, want a document error naming the duplicate", body, err)
		}
		if err != nil && strings.Contains(err.Error(), marker) {
			t.Errorf("error %q leaks the value", err)
		}
	}
}

// Syntax errors keep only the line: a parser's message is never passed on.
func TestStrictSyntaxQuiet(t *testing.T) {
	for _, doc := range []string{
		"kind: Secret\nstringData:\n  a: \"" + marker + "\n",
		"kind: Secret\nstringData:\n  a: *" + marker + "\n",
		"kind: Secret\nstringData: {a: " + marker + "\n",
		"kind: Secret\nstringData:\n  a: '" + marker + "' x: y\n",
		"kind: Secret\nstringData:\n\t" + marker + ": x\n",
		"a: b\n---\nkind: Secret\nstringData: [" + marker + "\n",
		"kind: Secret\nstringData: !<" + marker + " {}\n",
	} {
		_, err := ParseManifests([]byte(doc), "s.yaml")
		if err == nil || !strings.Contains(err.Error(), "s.yaml: document") || !strings.Contains(err.Error(), "invalid YAML syntax") {
			t.Errorf("%q: got %v", doc, err)
			continue
		}
		if strings.Contains(err.Error(), marker) {
			t.Errorf("error %q leaks the value", err)
		}
	}
}

// Strictness applies to Secrets only: objects of other kinds are not ours
// to judge, so their oddities do not cost the file its Secrets.
func TestStrictOnlySecrets(t *testing.T) {
	doc := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 3\n  a: 1\n  a: 2\n  1: x\n  b: !!binary aGk=\n" +
		"---\napiVersion: v1\nkind: Secret\nmetadata: {name: m}\nstringData: {a: b, c: \"0400\"}\n" +
		"---\napiVersion: v1\nkind: List\nitems:\n- {kind: ConfigMap, data: {x: 1, x: 2}}\n- {kind: Secret, apiVersion: v1, metadata: {name: n}, stringData: {k: !!int " + marker + "}}\n"
	ps, err := ParseManifests([]byte(doc), "m.yaml")
	if err != nil || len(ps) != 2 {
		t.Fatalf("got %+v, %v", ps, err)
	}
	if ps[0].Secret == nil || string(ps[0].Secret.Data["c"]) != "0400" {
		t.Errorf("m: %+v", ps[0])
	}
	if ps[1].Err == nil || !strings.Contains(ps[1].Err.Error(), "document 3: items[1]") || !strings.Contains(ps[1].Err.Error(), "stringData.k") {
		t.Errorf("n: %v", ps[1].Err)
	}
}

// What kubectl accepts still reads the same.
func TestStrictKeepsKubectlReadings(t *testing.T) {
	doc := "apiVersion: v1\nkind: Secret\nmetadata: {name: m, annotations: {num: 5, flag: yes}}\nimmutable: yes\n" +
		"stringData: {a: !!str 5, b: '5', d: 2001-12-14, e: ~, f: \"\"}\ndata:\n  g: !!str YQ==\n  h: &v YQ==\n  i: *v\n"
	ps, err := ParseManifests([]byte(doc), "k.yaml")
	if err != nil || len(ps) != 1 || ps[0].Err != nil {
		t.Fatalf("got %+v, %v", ps, err)
	}
	s := ps[0].Secret
	want := map[string]string{"a": "5", "b": "5", "d": "2001-12-14", "e": "", "f": "", "g": "a", "h": "a", "i": "a"}
	for k, v := range want {
		if string(s.Data[k]) != v {
			t.Errorf("%s = %q, want %q", k, s.Data[k], v)
		}
	}
	if !s.Immutable || s.Annotations["num"] != "5" || s.Annotations["flag"] != "true" {
		t.Errorf("immutable %v annotations %v", s.Immutable, s.Annotations)
	}
}

// A JSON manifest is read as JSON (kubectl does), so an escaped "/" works;
// it is held to the same rules.
func TestStrictJSONManifests(t *testing.T) {
	doc := `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "j"}, "stringData": {"url": "https:\/\/example.com"}}
{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "d"}, "stringData": {"a": "` + marker + `", "a": "x"}}`
	ps, err := ParseManifests([]byte(doc), "j.json")
	if err != nil || len(ps) != 2 {
		t.Fatalf("got %+v, %v", ps, err)
	}
	if ps[0].Secret == nil || string(ps[0].Secret.Data["url"]) != "https://example.com" {
		t.Errorf("j: %+v", ps[0])
	}
	if ps[1].Err == nil || !strings.Contains(ps[1].Err.Error(), "j.json: document 2): stringData.a: duplicate key") || strings.Contains(ps[1].Err.Error(), marker) {
		t.Errorf("d: %v", ps[1].Err)
	}
}
