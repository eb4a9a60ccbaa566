package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits on one decoded document, so that anchors and aliases ("billion
// laughs") cannot make a small text expand without end.
const (
	maxDepth  = 1000     // nested maps and lists
	maxNodes  = 1 << 20  // nodes visited, aliases expanded
	maxOutput = 64 << 20 // bytes of JSON produced

	// maxParseNodes bounds the nodes parsed from one stream, so that the
	// 16 MiB a file may hold cannot take more memory than a few times
	// its size: a parsed node costs some 150 bytes. Real manifests hold
	// far fewer (a Secret of 100 keys is some 200).
	maxParseNodes = 400_000
)

// errTooManyNodes refuses a stream of more than maxParseNodes nodes.
var errTooManyNodes = &Error{Reason: "has too many YAML nodes (maps, lists and values) to be a manifest"}

// Options says which parts of a document are held to a stricter shape.
type Options struct {
	// StringMaps are paths (as Error.Path spells them) whose value must be
	// null or an untagged map of keys to untagged or !!str-tagged strings;
	// an implicit null value stays null. A Secret's data and stringData.
	StringMaps []string
}

// Documents parses a YAML stream, or a stream of JSON values, into the root
// node of each document; an empty document is a nil entry, so that the index of a
// root is its document number minus one. A stream that does not parse is a
// *SyntaxError.
//
// The node count is bounded (maxParseNodes) before parsing, by a count of
// the characters a node needs (yamlNodeBound): the YAML parser builds
// each document whole and cannot be stopped. JSON, whose nodes this
// package builds, is counted again as it is read.
func Documents(data []byte) ([]*yaml.Node, error) {
	if yamlNodeBound(data) > maxParseNodes {
		return nil, errTooManyNodes
	}
	if docs, ok, err := jsonDocuments(data); ok {
		return docs, err
	}
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, syntaxError(err, len(docs)+1)
		}
		docs = append(docs, root(&n))
	}
}

// root is a document's content, nil for an empty document.
func root(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if isNull(n) {
		return nil
	}
	return n
}

// YAMLToJSON decodes text that must hold at most one YAML (or JSON)
// document; empty text is "null".
func YAMLToJSON(text []byte, opt Options) ([]byte, error) {
	docs, err := Documents(text)
	switch {
	case err != nil:
		return nil, err
	case len(docs) > 1:
		return nil, &Error{Reason: "holds more than one YAML document"}
	case len(docs) == 0 || docs[0] == nil:
		return []byte("null"), nil
	}
	return ToJSON(docs[0], opt)
}

// ToJSON converts one node strictly to JSON text. Errors are *Error.
func ToJSON(n *yaml.Node, opt Options) ([]byte, error) {
	w := &walker{opt: opt, active: map[*yaml.Node]bool{}}
	if n == nil {
		return []byte("null"), nil
	}
	if err := w.node(n, "", 0); err != nil {
		return nil, err
	}
	return w.out.Bytes(), nil
}

type walker struct {
	opt    Options
	out    bytes.Buffer
	nodes  int
	active map[*yaml.Node]bool // alias targets being expanded: a cycle check
}

func (w *walker) node(n *yaml.Node, path string, depth int) error {
	w.nodes++
	switch {
	case depth > maxDepth:
		return &Error{Path: path, Line: n.Line, Reason: "nested too deeply"}
	case w.nodes > maxNodes || w.out.Len() > maxOutput:
		return &Error{Path: path, Line: n.Line, Reason: "expands to too much data (aliases?)"}
	}
	if n.Kind == yaml.AliasNode {
		t := n.Alias
		if t == nil || w.active[t] {
			return &Error{Path: path, Line: n.Line, Reason: "alias refers to itself or to nothing"}
		}
		w.active[t] = true
		defer delete(w.active, t)
		return w.node(t, path, depth+1)
	}
	if slices.Contains(w.opt.StringMaps, path) {
		return w.stringMap(n, path, depth)
	}
	switch n.Kind {
	case yaml.MappingNode:
		if explicit(n) && n.Tag != "!!map" {
			return &Error{Path: path, Line: n.Line, Reason: "a map tagged " + describe(n.Tag) + " is not supported"}
		}
		return w.mapping(n, path, depth, w.node)
	case yaml.SequenceNode:
		if explicit(n) && n.Tag != "!!seq" {
			return &Error{Path: path, Line: n.Line, Reason: "a list tagged " + describe(n.Tag) + " is not supported"}
		}
		w.out.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				w.out.WriteByte(',')
			}
			if err := w.node(c, index(path, i), depth+1); err != nil {
				return err
			}
		}
		w.out.WriteByte(']')
		return nil
	case yaml.ScalarNode:
		js, reason := scalar(n)
		if reason != "" {
			return &Error{Path: path, Line: n.Line, Reason: reason}
		}
		w.out.WriteString(js)
		return nil
	}
	return &Error{Path: path, Line: n.Line, Reason: "unsupported YAML node"}
}

// mapping writes a map, checking its keys; value writes each value.
func (w *walker) mapping(n *yaml.Node, path string, depth int, value func(*yaml.Node, string, int) error) error {
	seen := make(map[string]int, len(n.Content)/2)
	w.out.WriteByte('{')
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if reason := keyProblem(k); reason != "" {
			return &Error{Path: path, Line: k.Line, Reason: reason}
		}
		p := child(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			return &Error{Path: p, Line: k.Line, Reason: "duplicate key (also at line " + strconv.Itoa(line) + ")"}
		}
		seen[k.Value] = k.Line
		if i > 0 {
			w.out.WriteByte(',')
		}
		writeString(&w.out, k.Value)
		w.out.WriteByte(':')
		if err := value(v, p, depth+1); err != nil {
			return err
		}
	}
	w.out.WriteByte('}')
	return nil
}

// stringMap writes a map held to Options.StringMaps.
func (w *walker) stringMap(n *yaml.Node, path string, depth int) error {
	if n.Kind == yaml.ScalarNode && isNull(n) && !explicit(n) {
		w.out.WriteString("null")
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return &Error{Path: path, Line: n.Line, Reason: "must be a map of keys to strings"}
	}
	if explicit(n) {
		return &Error{Path: path, Line: n.Line, Reason: "must be an untagged map, not one tagged " + describe(n.Tag)}
	}
	return w.mapping(n, path, depth, func(v *yaml.Node, p string, d int) error {
		w.nodes++
		if v.Kind == yaml.AliasNode && v.Alias != nil && v.Alias.Kind == yaml.ScalarNode {
			v = v.Alias
		}
		if v.Kind != yaml.ScalarNode {
			return &Error{Path: p, Line: v.Line, Reason: "value must be a string, not a map or a list"}
		}
		tag := v.ShortTag()
		switch {
		case explicit(v) && tag != "!!str":
			return &Error{Path: p, Line: v.Line, Reason: "value tagged " + describe(tag) + ": only strings (no tag, or !!str) are allowed"}
		case !explicit(v) && isNull(v):
			w.out.WriteString("null") // an empty value, as the API server reads it
		case !explicit(v) && (tag == "!!int" || tag == "!!float" || tag == "!!bool" || yaml11Bool(v)):
			return &Error{Path: p, Line: v.Line, Reason: "value is not a string (quote it: YAML reads numbers, yes/no, on/off and true/false as non-strings)"}
		default:
			// !!str, and text that only looks like a timestamp: kubectl
			// keeps that as the string it is.
			writeString(&w.out, v.Value)
		}
		return nil
	})
}

// keyProblem says why a map key is refused; "" when it is a plain string.
func keyProblem(k *yaml.Node) string {
	if k.Kind != yaml.ScalarNode {
		return "complex key (a map, list or alias) is not supported"
	}
	tag := k.ShortTag()
	switch {
	case tag == "!!merge":
		return "merge key (<<) is not supported"
	case tag == "!!null":
		return "null key is not supported"
	case tag == "!!str" && !yaml11Bool(k):
		return ""
	case tag == "!!str":
		return "key reads as a !!bool in YAML 1.1 (quote it)"
	}
	return "key is a " + describe(tag) + ", not a string (quote it)"
}

// scalar converts one scalar to JSON text, or says why it cannot.
func scalar(n *yaml.Node) (js, reason string) {
	tag := n.ShortTag()
	if !explicit(n) && yaml11Bool(n) {
		return strconv.FormatBool(yaml11True[n.Value]), ""
	}
	switch tag {
	case "!!timestamp":
		if explicit(n) {
			return "", "values tagged !!timestamp are not supported"
		}
		// Text that only looks like a timestamp: kubectl keeps it as the
		// string it is (JSON has no timestamps).
		fallthrough
	case "!!str", "!":
		var b bytes.Buffer
		writeString(&b, n.Value)
		return b.String(), ""
	case "!!null":
		if isNullText(n.Value) {
			return "null", ""
		}
	case "!!bool":
		switch strings.ToLower(n.Value) {
		case "true":
			return "true", ""
		case "false":
			return "false", ""
		}
		if yaml11Bool(n) || explicit(n) && yaml11Word(n.Value) {
			return strconv.FormatBool(yaml11True[n.Value]), ""
		}
	case "!!int":
		plain := strings.ReplaceAll(n.Value, "_", "")
		if i, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return strconv.FormatInt(i, 10), ""
		}
		if u, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return strconv.FormatUint(u, 10), ""
		}
		if !explicit(n) {
			return "", "integer out of range"
		}
	case "!!float":
		f, err := parseFloat(n.Value)
		if err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return strconv.FormatFloat(f, 'g', -1, 64), ""
		}
		if err == nil {
			return "", "infinite or NaN numbers do not fit in JSON"
		}
	case "!!binary":
		return "", "!!binary values are not supported"
	default:
		return "", "values tagged " + describe(tag) + " are not supported"
	}
	return "", "value does not fit its tag " + describe(tag)
}

func parseFloat(s string) (float64, error) {
	switch strings.ToLower(s) {
	case ".inf", "+.inf":
		return math.Inf(1), nil
	case "-.inf":
		return math.Inf(-1), nil
	case ".nan":
		return math.NaN(), nil
	}
	plain := strings.ReplaceAll(s, "_", "")
	if i, err := strconv.ParseInt(plain, 0, 64); err == nil {
		return float64(i), nil
	}
	return strconv.ParseFloat(plain, 64)
}

// YAML 1.1 booleans that YAML 1.2 (and so yaml/v3) reads as strings;
// kubectl reads them as booleans, and so does this package.
var yaml11True = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"n": false, "N": false, "no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

func yaml11Word(s string) bool { _, ok := yaml11True[s]; return ok }

// yaml11Bool is a plain (unquoted, untagged) scalar that YAML 1.1 reads as
// a boolean.
func yaml11Bool(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && !explicit(n) && n.Style&quoted == 0 && yaml11Word(n.Value)
}

const quoted = yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle

// explicit says the node carries a tag written in the text.
func explicit(n *yaml.Node) bool { return n.Style&yaml.TaggedStyle != 0 }

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" && isNullText(n.Value)
}

func isNullText(s string) bool {
	switch s {
	case "", "~", "null", "Null", "NULL":
		return true
	}
	return false
}

func writeString(b *bytes.Buffer, s string) {
	js, _ := json.Marshal(s) // a string always marshals
	b.Write(js)
}

// yamlNodeBound is an upper bound of the nodes a YAML stream parses into,
// from one pass over its bytes. Every node but a stream's first needs an
// indicator character: a map entry its `:` (two nodes, key and value), a
// list entry its `- ` or `,`, a complex key its `? `, a flow collection
// its `[` or `{`, a document its `---`. Quotes, comments and block
// scalars are not skipped: telling them apart takes a parser, and a
// character counted there only makes the bound looser, never too small.
func yamlNodeBound(data []byte) int {
	n := 1
	for i, c := range data {
		switch c {
		case ':', ',':
			n += 2
		case '[', '{':
			n++
		case '-', '?':
			// Indicators only when followed by white space or the end.
			if i+1 == len(data) || strings.IndexByte(" \t\r\n", data[i+1]) >= 0 {
				n += 2
			}
		}
	}
	return n
}
