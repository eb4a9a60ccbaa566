package secret

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParseMultiDocument(t *testing.T) {
	doc := `
---
# only a comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {a: "not base64 !!"}
---
apiVersion: v1
kind: Secret
metadata: {name: one, namespace: ns1}
data: {a: YQ==}
--- # trailing comment allowed
apiVersion: v1
kind: Secret
metadata: {name: two}
stringData: {b: "bee"}
---
`
	ps, err := ParseManifests([]byte(doc), "multi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("got %d Secrets, want 2", len(ps))
	}
	if ps[0].Secret == nil || ps[0].Secret.Ref() != "ns1/one" || string(ps[0].Secret.Data["a"]) != "a" {
		t.Errorf("first: %+v", ps[0])
	}
	if ps[1].Secret == nil || ps[1].Secret.Ref() != "default/two" || string(ps[1].Secret.Data["b"]) != "bee" {
		t.Errorf("second: %+v", ps[1])
	}
}

func TestParseList(t *testing.T) {
	doc := `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata: {name: a}
  data: {k: dg==}
- apiVersion: v1
  kind: Service
  metadata: {name: svc}
- apiVersion: v1
  kind: List
  items:
  - apiVersion: v1
    kind: Secret
    metadata: {name: nested, namespace: x}
`
	ps, err := ParseManifests([]byte(doc), "list.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "a" || ps[1].Name != "nested" || ps[1].Namespace != "x" {
		t.Fatalf("got %+v", ps)
	}
	// A typed list from the API carries no kind on its items.
	ps, err = ParseManifests([]byte(`{"kind":"SecretList","apiVersion":"v1","items":[{"metadata":{"name":"s"},"data":{"k":"dg=="}}]}`), "l.json")
	if err != nil || len(ps) != 1 || ps[0].Secret == nil || string(ps[0].Secret.Data["k"]) != "v" {
		t.Fatalf("SecretList: %+v %v", ps, err)
	}
}

func TestParseJSON(t *testing.T) {
	doc := `{
  "apiVersion": "v1",
  "kind": "Secret",
  "metadata": {"name": "js", "namespace": "n", "resourceVersion": "7",
               "annotations": {"a": "b"}},
  "type": "kubernetes.io/basic-auth",
  "immutable": true,
  "data": {"username": "YWRtaW4="}
}`
	ps, err := ParseManifests([]byte(doc), "s.json")
	if err != nil || len(ps) != 1 || ps[0].Err != nil {
		t.Fatalf("got %+v, %v", ps, err)
	}
	s := ps[0].Secret
	if s.Ref() != "n/js" || !s.Immutable || s.ResourceVersion != "7" || s.Annotations["a"] != "b" ||
		s.Type != string(corev1.SecretTypeBasicAuth) || string(s.Data["username"]) != "admin" {
		t.Errorf("got %+v", s)
	}
}

func TestParseStringDataWins(t *testing.T) {
	doc := `kind: Secret
apiVersion: v1
metadata: {name: m}
data: {both: ` + base64.StdEncoding.EncodeToString([]byte("old")) + `, onlydata: YQ==}
stringData: {both: new, onlystring: "s"}
`
	p := parseOne(t, doc)
	if p.Err != nil {
		t.Fatal(p.Err)
	}
	got := p.Secret.Data
	if string(got["both"]) != "new" || string(got["onlydata"]) != "a" || string(got["onlystring"]) != "s" || len(got) != 3 {
		t.Errorf("got %q", got)
	}
}

func TestParseBase64(t *testing.T) {
	// Line breaks inside a value are ignored, as the API server's decoder does.
	p := parseOne(t, "kind: Secret\napiVersion: v1\nmetadata: {name: m}\ndata:\n  k: |\n    YWRt\n    aW4=\n  empty: \"\"\n  nul: null\n")
	if p.Err != nil || string(p.Secret.Data["k"]) != "admin" || len(p.Secret.Data["empty"]) != 0 || len(p.Secret.Data["nul"]) != 0 {
		t.Fatalf("got %+v", p)
	}
	for _, bad := range []string{secretValue, secretValue64[:len(secretValue64)-1], "YWRtaW4", "YWRtaW4=="} {
		doc := fmt.Sprintf("kind: Secret\napiVersion: v1\nmetadata: {name: m, namespace: ns}\ndata: {ok: YQ==, bad-key: %q}\n", bad)
		p := parseOne(t, doc)
		checkInvalid(t, p.Err, `secret "ns/m"`, "seed.yaml", `data key "bad-key"`, "illegal base64")
		if p.Secret != nil || p.Name != "m" || p.Namespace != "ns" {
			t.Errorf("got %+v", p)
		}
	}
}

func TestParseNonStringValues(t *testing.T) {
	tests := []struct{ field, value string }{
		{"stringData", "yes"}, {"stringData", "on"}, {"stringData", "8080"}, {"stringData", "0400"},
		{"stringData", "true"}, {"stringData", "1.5"}, {"stringData", "[a]"}, {"stringData", "{a: b}"},
		{"data", "12345678"}, {"data", "no"},
	}
	for _, tc := range tests {
		doc := fmt.Sprintf("kind: Secret\napiVersion: v1\nmetadata: {name: m}\n%s:\n  enabled: %s\n", tc.field, tc.value)
		checkInvalid(t, parseOne(t, doc).Err, tc.field+".enabled: value", "string", `"default/m"`, "line 5")
	}
	// Quoted, the same values are plain strings.
	p := parseOne(t, "kind: Secret\napiVersion: v1\nmetadata: {name: m}\nstringData: {a: \"yes\", b: \"0400\"}\n")
	if p.Err != nil || string(p.Secret.Data["a"]) != "yes" || string(p.Secret.Data["b"]) != "0400" {
		t.Fatalf("got %+v", p)
	}
}

func TestParseInvalidObjects(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"data not a map", "data: [a]", []string{"data", "map"}},
		{"type not string", "type: 3", []string{"type"}},
		{"immutable not bool", "immutable: \"maybe\"", []string{"immutable"}},
		{"bad key", "stringData: {\"a b\": x}", []string{`key "a b"`}},
		{"bad name", "metadata: {name: Upper}", []string{"metadata.name", "Upper"}},
		{"no name", "metadata: {namespace: x}", []string{"metadata.name", "required"}},
		{"metadata not object", "metadata: 5", []string{"metadata"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if !strings.Contains(body, "metadata") {
				body = "metadata: {name: m}\n" + body
			}
			p := parseOne(t, "kind: Secret\napiVersion: v1\n"+body+"\n")
			checkInvalid(t, p.Err, append(tc.want, "seed.yaml")...)
		})
	}
}

func TestParseSizeLimit(t *testing.T) {
	mk := func(n int) string {
		return "kind: Secret\napiVersion: v1\nmetadata: {name: big, namespace: ns}\ndata:\n  a: " +
			base64.StdEncoding.EncodeToString(make([]byte, n-1)) + "\nstringData:\n  b: \"x\"\n"
	}
	if p := parseOne(t, mk(MaxSize)); p.Err != nil {
		t.Fatalf("at limit: %v", p.Err)
	}
	checkInvalid(t, parseOne(t, mk(MaxSize+1)).Err, `"ns/big"`, "1048577", "1048576")
}

func TestParseIgnoresOtherKinds(t *testing.T) {
	doc := `apiVersion: example.com/v1
kind: Secret
metadata: {name: not-ours}
data: {a: "!!"}
---
kind: Pod
apiVersion: v1
metadata: {name: p}
---
apiVersion: v1
metadata: {name: no-kind}
`
	ps, err := ParseManifests([]byte(doc), "o.yaml")
	if err != nil || len(ps) != 0 {
		t.Fatalf("got %+v, %v", ps, err)
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	for _, doc := range []string{"a: [1", "kind: Secret\n  bad: indent\n x", "just a string", "- a\n- b\n", "kind: List\nitems: 5\n", "--- junk\n"} {
		_, err := ParseManifests([]byte(doc), "broken.yaml")
		if err == nil || !strings.Contains(err.Error(), "broken.yaml") {
			t.Errorf("%q: got %v, want an error naming the file", doc, err)
		}
	}
	ps, err := ParseManifests(nil, "empty.yaml")
	if err != nil || len(ps) != 0 {
		t.Errorf("empty file: %v %v", ps, err)
	}
}
