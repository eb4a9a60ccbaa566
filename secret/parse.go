package secret

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Parsed is one Secret object found in a manifest file. Err (an
// *InvalidError) is set when that object is invalid; Namespace and Name are
// filled as far as they could be read, so a caller can ignore errors of
// Secrets it does not want.
type Parsed struct {
	Namespace, Name string
	Secret          *Secret
	Err             error
}

// ParseManifests reads every Secret in a file of Kubernetes manifests:
// multi-document YAML or JSON, "kind: List" (any *List) recursed, other
// kinds ignored. The error is only for a file that cannot be parsed at all.
func ParseManifests(data []byte, origin string) ([]Parsed, error) {
	var out []Parsed
	r := yamlutil.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			// The reader's message quotes the rest of the "---" line, which
			// could be data; name the problem only.
			return nil, fmt.Errorf("%s: document %d: invalid YAML document separator (only a comment may follow ---)", origin, doc)
		}
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", origin, doc, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // empty document or only comments
		}
		out, err = collect(out, js, "", origin)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", origin, doc, err)
		}
	}
}

// collect appends the Secrets of one JSON object (a List is recursed).
// defaultKind is the kind of items of a typed list such as SecretList,
// whose items carry no kind of their own.
func collect(out []Parsed, js []byte, defaultKind, origin string) ([]Parsed, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(js, &obj); err != nil || obj == nil {
		return out, errors.New("not an object")
	}
	kind, _ := str(obj["kind"])
	if kind == "" {
		kind = defaultKind
	}
	switch {
	case kind == "Secret":
		apiVersion, _ := str(obj["apiVersion"])
		if apiVersion != "" && apiVersion != "v1" {
			return out, nil // another API group's "Secret", not ours
		}
		return append(out, parseSecret(obj, origin)), nil
	case strings.HasSuffix(kind, "List"):
		var items []json.RawMessage
		if raw, ok := obj["items"]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &items); err != nil {
				return out, fmt.Errorf("%s: items is not a list", kind)
			}
		}
		itemKind := strings.TrimSuffix(kind, "List")
		for i, item := range items {
			var err error
			if out, err = collect(out, item, itemKind, origin); err != nil {
				return out, fmt.Errorf("items[%d]: %w", i, err)
			}
		}
	}
	return out, nil
}

// rawMeta is the part of metadata a Secret needs. Annotations are raw so
// that a non-string value (the seed's "last-applied-configuration: { ... }"
// placeholder) does not sink the Secret.
type rawMeta struct {
	Name            string                     `json:"name"`
	Namespace       string                     `json:"namespace"`
	ResourceVersion json.RawMessage            `json:"resourceVersion"`
	Annotations     map[string]json.RawMessage `json:"annotations"`
}

// parseSecret decodes one Secret object: base64 data, stringData merged
// over it (stringData wins), then Validate. Values of the wrong JSON type
// are named by key, as kubectl rejects them; values are never quoted.
func parseSecret(obj map[string]json.RawMessage, origin string) Parsed {
	s := &Secret{Origin: origin}
	var meta rawMeta
	if raw, ok := obj["metadata"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return Parsed{Err: invalid(s, "metadata", "must be an object with string name and namespace")}
		}
	}
	s.Name, s.Namespace = meta.Name, meta.Namespace
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	p := Parsed{Namespace: s.Namespace, Name: s.Name}
	fail := func(field, reason string) Parsed {
		p.Err = invalid(s, field, reason)
		return p
	}
	s.ResourceVersion = scalarText(meta.ResourceVersion)
	if len(meta.Annotations) > 0 {
		s.Annotations = make(map[string]string, len(meta.Annotations))
		for k, v := range meta.Annotations {
			s.Annotations[k] = scalarText(v)
		}
	}
	var ok bool
	if s.Type, ok = str(obj["type"]); !ok {
		return fail("type", "must be a string")
	}
	if raw, found := obj["immutable"]; found && !isNull(raw) {
		if err := json.Unmarshal(raw, &s.Immutable); err != nil {
			return fail("immutable", "must be true or false")
		}
	}
	data, fe := stringMap(obj["data"], "data")
	if fe != nil {
		return fail(fe.field, fe.reason)
	}
	strData, fe := stringMap(obj["stringData"], "stringData")
	if fe != nil {
		return fail(fe.field, fe.reason)
	}
	s.Data = make(map[string][]byte, len(data)+len(strData))
	for _, k := range sortedKeys(data) {
		v, err := base64.StdEncoding.DecodeString(data[k])
		if err != nil {
			// CorruptInputError only carries an offset, never the bytes.
			return fail(fmt.Sprintf("data key %q", k), err.Error())
		}
		s.Data[k] = v
	}
	for k, v := range strData {
		s.Data[k] = []byte(v)
	}
	if err := Validate(s); err != nil {
		p.Err = err
		return p
	}
	p.Secret = s
	return p
}

// stringMap decodes data or stringData: a map whose values are strings
// (null counts as empty, as the API server reads it). A value of another
// type is an error naming its key: YAML reads yes/no/on/off and numbers as
// non-strings, which kubectl rejects too.
func stringMap(raw json.RawMessage, field string) (map[string]string, *fieldError) {
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &fieldError{field, "must be a map of keys to strings"}
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		if isNull(m[k]) {
			out[k] = ""
			continue
		}
		v, ok := str(m[k])
		if !ok {
			return nil, &fieldError{fmt.Sprintf("%s key %q", field, k),
				"value is not a string (quote it: YAML reads numbers, yes/no, on/off and true/false as non-strings)"}
		}
		out[k] = v
	}
	return out, nil
}

type fieldError struct{ field, reason string }

// str reads a JSON string; absent or null is "" and ok.
func str(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || isNull(raw) {
		return "", true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// scalarText is a string value as is, anything else as its JSON text.
func scalarText(raw json.RawMessage) string {
	if s, ok := str(raw); ok {
		return s
	}
	return string(raw)
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
