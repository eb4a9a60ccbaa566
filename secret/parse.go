package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/secretfs/secretfs/manifest"
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
// kinds ignored. The error is only for a file that cannot be parsed at all,
// or a document whose kind, or whose Secret's name, cannot be told.
//
// YAML is read strictly through package manifest (duplicate keys, non-string
// keys, tagged or non-string values in data and stringData are errors), and
// no error quotes the input: they name the file, document, key path and line.
func ParseManifests(data []byte, origin string) ([]Parsed, error) {
	docs, err := manifest.Documents(data)
	if err != nil {
		var se *manifest.SyntaxError
		if errors.As(err, &se) && se.Doc > 0 {
			return nil, fmt.Errorf("%s: document %d: %w", origin, se.Doc, err)
		}
		return nil, fmt.Errorf("%s: %w", origin, err)
	}
	var out []Parsed
	for i, doc := range docs {
		if doc == nil {
			continue // empty document or only comments
		}
		where := fmt.Sprintf("%s: document %d", origin, i+1)
		if out, err = collect(out, doc, "", where, origin); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	return out, nil
}

// strict holds the fields whose values must be plain strings.
var strict = manifest.Options{StringMaps: []string{"data", "stringData"}}

// collect appends the Secrets of one object node (a List is recursed).
// defaultKind is the kind of items of a typed list such as SecretList,
// whose items carry no kind of their own. where names the object in
// strictness errors ("f.yaml: document 2: items[1]").
func collect(out []Parsed, n *yaml.Node, defaultKind, where, origin string) ([]Parsed, error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return out, errors.New("not an object")
	}
	kind, err := manifest.LookupText(n, "kind")
	if err != nil {
		return out, err
	}
	if kind == "" {
		kind = defaultKind
	}
	switch {
	case kind == "Secret":
		apiVersion, err := manifest.LookupText(n, "apiVersion")
		if err != nil {
			return out, err
		}
		if apiVersion != "" && apiVersion != "v1" {
			return out, nil // another API group's "Secret", not ours
		}
		return collectSecret(out, n, where, origin)
	case strings.HasSuffix(kind, "List"):
		items, err := manifest.Lookup(n, "items")
		if err != nil {
			return out, err
		}
		if items == nil || items.Kind == yaml.ScalarNode && items.ShortTag() == "!!null" {
			return out, nil
		}
		if items.Kind != yaml.SequenceNode {
			return out, fmt.Errorf("%s: items is not a list", kind)
		}
		itemKind := strings.TrimSuffix(kind, "List")
		for i, item := range items.Content {
			at := fmt.Sprintf("items[%d]", i)
			if out, err = collect(out, item, itemKind, where+": "+at, origin); err != nil {
				return out, fmt.Errorf("%s: %w", at, err)
			}
		}
	}
	return out, nil
}

// collectSecret converts one Secret strictly and parses it. A strictness
// error belongs to that Secret (so that it is ignored unless asked for)
// when its name can be read; otherwise it is the document's.
func collectSecret(out []Parsed, n *yaml.Node, where, origin string) ([]Parsed, error) {
	js, err := manifest.ToJSON(n, strict)
	if err != nil {
		var me *manifest.Error
		ns, name, ok := identity(n)
		if !ok || !errors.As(err, &me) {
			return out, err
		}
		reason := me.Reason
		if me.Line > 0 {
			reason += fmt.Sprintf(" (line %d)", me.Line)
		}
		ie := &InvalidError{Object: objectName(ns, name), Field: me.Path, Reason: reason, Origin: where}
		return append(out, Parsed{Namespace: ns, Name: name, Err: ie}), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(js, &obj); err != nil {
		return out, errors.New("not an object") // cannot happen: n is a map
	}
	return append(out, parseSecret(obj, origin)), nil
}

// identity reads a Secret's namespace and name leniently from its node,
// as far as they are strings; false only when metadata, name or namespace
// is written twice, so that either could be meant.
func identity(n *yaml.Node) (namespace, name string, ok bool) {
	meta, err := manifest.Lookup(n, "metadata")
	if err != nil {
		return "", "", false
	}
	if name, err = manifest.LookupText(meta, "name"); err != nil {
		return "", "", false
	}
	if namespace, err = manifest.LookupText(meta, "namespace"); err != nil {
		return "", "", false
	}
	if namespace == "" {
		namespace = "default"
	}
	return namespace, name, true
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
	for _, k := range slices.Sorted(maps.Keys(data)) {
		v, err := base64.StdEncoding.DecodeString(data[k])
		if err != nil {
			// Named by offset only: a decoder's text is never passed on.
			reason := "is not valid base64"
			var ce base64.CorruptInputError
			if errors.As(err, &ce) {
				reason = fmt.Sprintf("illegal base64 data at byte %d", int64(ce))
			}
			return fail(fmt.Sprintf("data key %q", k), reason)
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
// (null counts as empty, as the API server reads it). The strict walk
// (strict.StringMaps) has refused anything else already, naming the key
// path and line; the checks here only keep this function whole alone.
func stringMap(raw json.RawMessage, field string) (map[string]string, *fieldError) {
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &fieldError{field, "must be a map of keys to strings"}
	}
	out := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if isNull(m[k]) {
			out[k] = ""
			continue
		}
		v, ok := str(m[k])
		if !ok {
			return nil, &fieldError{fmt.Sprintf("%s key %q", field, k), "value is not a string"}
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
