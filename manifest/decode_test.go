package manifest

import (
	"errors"
	"strings"
	"testing"
)

func TestYAMLToJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "null"},
		{"# only a comment\n", "null"},
		{`[{"key":"a","mode":256}]`, `[{"key":"a","mode":256}]`},
		{"- {key: a, mode: 0400}", `[{"key":"a","mode":256}]`}, // YAML 1.1: a leading 0 is octal
		{"- {mode: 0o400, m2: 0x1ff, m3: 1_000}", `[{"mode":256,"m2":511,"m3":1000}]`},
		{"a: yes\nb: No\nc: on\nd: 'yes'\ne: true\nf: !!bool y", `{"a":true,"b":false,"c":true,"d":"yes","e":true,"f":true}`},
		{"a: 1.5\nb: -2e3\nc: !!float 3", `{"a":1.5,"b":-2000,"c":3}`},
		{"a: ~\nb: null\nc:\nd: !!null ''", `{"a":null,"b":null,"c":null,"d":null}`},
		{"a: 2001-12-14\nb: !!str 12\nc: \"12\"", `{"a":"2001-12-14","b":"12","c":"12"}`},
		{"a: &x {b: 1}\nc: *x", `{"a":{"b":1},"c":{"b":1}}`},
		{"a: !!map {b: 1}\nc: !!seq [1]", `{"a":{"b":1},"c":[1]}`},
		{"a: \"<&>\u00e9\"", `{"a":"\u003c\u0026\u003eé"}`},
	}
	for _, tc := range tests {
		js, err := YAMLToJSON([]byte(tc.in), Options{})
		if err != nil || string(js) != tc.want {
			t.Errorf("%q: got %s, %v; want %s", tc.in, js, err, tc.want)
		}
	}
}

func TestYAMLToJSONErrors(t *testing.T) {
	const v = "Zq7xK9mW2vRt4pLs8nBdQ3"
	tests := []struct{ in, want string }{
		{"a: 1\n---\nb: 2\n", "more than one YAML document"},
		{"a: !!int " + v, "a: value does not fit its tag !!int (line 1)"},
		{"a: !!bool " + v, "a: value does not fit its tag !!bool"},
		{"a: !!float " + v, "a: value does not fit its tag !!float"},
		{"a: !!null " + v, "a: value does not fit its tag !!null"},
		{"a: !!binary " + v, "a: !!binary values are not supported"},
		{"a: !" + v + " x", "a: values tagged a custom tag are not supported"},
		{"a: !!set {x: 1}", "a: a map tagged !!set is not supported"},
		{"a: !!omap [x]", "a: a list tagged !!omap is not supported"},
		{"a: .inf", "a: infinite or NaN"},
		{"a: 99999999999999999999", ""}, // a float: JSON can carry it
		{"- {a: 1, a: " + v + "}", "[0].a: duplicate key (also at line 1) (line 1)"},
		{"\"tls.crt\": 1\n\"tls.crt\": 2", `["tls.crt"]: duplicate key`},
		{"? [" + v + "]\n: 1", "complex key"},
		{"1: " + v, "key is a !!int"},
		{"~: " + v, "null key"},
		{"<<: {a: " + v + "}", "merge key"},
		{"a: &x [*x]", "alias refers to itself"},
		{"a: [" + v, "invalid YAML syntax at line 1"},
		{"a: *" + v, "invalid YAML syntax"},
		{strings.Repeat("[", 2000) + strings.Repeat("]", 2000), "nested too deeply"},
	}
	for _, tc := range tests {
		_, err := YAMLToJSON([]byte(tc.in), Options{})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.in, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), v) {
			t.Errorf("%q: error %q quotes the input", tc.in, err)
		}
		var me *Error
		var se *SyntaxError
		if !errors.As(err, &me) && !errors.As(err, &se) {
			t.Errorf("%q: error %T is neither *Error nor *SyntaxError", tc.in, err)
		}
	}
}

// Anchors cannot expand a small text without end ("billion laughs").
func TestAliasExpansionBounded(t *testing.T) {
	doc := "a0: &a0 [" + strings.Repeat("x,", 9) + "x]\n"
	for i := 1; i < 12; i++ {
		doc += "a" + string(rune('0'+i%10)) + string(rune('a'+i)) + ": &a" + string(rune('a'+i)) + " [" +
			strings.Repeat("*a"+prev(i)+",", 9) + "*a" + prev(i) + "]\n"
	}
	_, err := YAMLToJSON([]byte(doc), Options{})
	if err == nil || !strings.Contains(err.Error(), "too much data") {
		t.Fatalf("got %v, want the expansion refused", err)
	}
}

func prev(i int) string {
	if i == 1 {
		return "0"
	}
	return string(rune('a' + i - 1))
}

func TestStringMaps(t *testing.T) {
	opt := Options{StringMaps: []string{"data"}}
	js, err := YAMLToJSON([]byte("data: {a: x, b: ~, c: !!str 1, d: &s t, e: *s}\nother: {num: 1}"), opt)
	if err != nil || string(js) != `{"data":{"a":"x","b":null,"c":"1","d":"t","e":"t"},"other":{"num":1}}` {
		t.Fatalf("got %s, %v", js, err)
	}
	for in, want := range map[string]string{
		"data: {a: 1}":        "data.a: value is not a string",
		"data: {a: yes}":      "data.a: value is not a string",
		"data: {a: !!null ~}": "data.a: value tagged !!null",
		"data: !!map {a: b}":  "data: must be an untagged map",
		"data: [a]":           "data: must be a map",
		"data: {a: [b]}":      "data.a: value must be a string",
		"data: {y: b}":        "data: key reads as a !!bool",
		"data: !!null":        "data: must be a map",
	} {
		if _, err := YAMLToJSON([]byte(in), opt); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
}

// JSON is read as JSON, as kubectl reads a file that starts with "{":
// escapes YAML refuses work, duplicates are still refused, lines are kept.
func TestJSON(t *testing.T) {
	js, err := YAMLToJSON([]byte("\ufeff {\"a\": \"x\\/y\", \"b\": [1, 2.5, true, null, 18446744073709551615]}"), Options{})
	if err != nil || string(js) != `{"a":"x/y","b":[1,2.5,true,null,18446744073709551615]}` {
		t.Fatalf("got %s, %v", js, err)
	}
	_, err = YAMLToJSON([]byte("{\n\"a\": 1,\n\"a\": \"\\/\"\n}"), Options{})
	if err == nil || err.Error() != "a: duplicate key (also at line 2) (line 3)" {
		t.Fatalf("duplicate: %v", err)
	}
	_, err = YAMLToJSON([]byte(`{"data": {"k": 5}}`), Options{StringMaps: []string{"data"}})
	if err == nil || !strings.Contains(err.Error(), "data.k: value is not a string") {
		t.Fatalf("number in data: %v", err)
	}
	docs, err := Documents([]byte(`{"a": 1} {"b": "\/"} null [1]`))
	if err != nil || len(docs) != 4 || docs[2] != nil {
		t.Fatalf("a stream of JSON values: %v, %v", docs, err)
	}
	// Not JSON after all (a YAML flow map): read as YAML.
	js, err = YAMLToJSON([]byte("{a: yes, b: 0400}"), Options{})
	if err != nil || string(js) != `{"a":true,"b":256}` {
		t.Fatalf("YAML flow map: %s, %v", js, err)
	}
}
