package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"go.yaml.in/yaml/v3"
)

// jsonDocuments reads text that is a stream of JSON values, as kubectl
// does for a file that starts with "{" or "[": YAML parsers refuse some
// JSON (the escape "\/"), so JSON is read as JSON. Each value becomes a
// node tree like the YAML parser's, so that one strict walk serves both.
// ok is false when the text is not JSON; the caller then reads it as YAML.
//
// The nodes are counted as they are made, and reading stops past
// maxParseNodes (errTooManyNodes): a node costs some 150 bytes, so 16 MiB
// of `[1,1,1,…` would otherwise take over a GiB.
func jsonDocuments(data []byte) (docs []*yaml.Node, ok bool, err error) {
	t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\ufeff")), " \t\r\n")
	if len(t) == 0 || t[0] != '{' && t[0] != '[' {
		return nil, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	r := &jsonReader{dec: dec, lines: newLineIndex(t)}
	for {
		n, err := r.value(0)
		if errors.Is(err, io.EOF) && n == nil {
			return docs, true, nil
		}
		if errors.Is(err, errTooManyNodes) {
			return nil, true, err
		}
		if err != nil {
			return nil, false, nil
		}
		docs = append(docs, root(n))
	}
}

// jsonReader reads JSON values into nodes, counting them.
type jsonReader struct {
	dec   *json.Decoder
	lines *lineIndex
	nodes int
}

// lineIndex turns the decoder's byte offsets, which only grow, into line
// numbers, counting each newline once.
type lineIndex struct {
	text []byte
	off  int64
	line int
}

func newLineIndex(text []byte) *lineIndex { return &lineIndex{text: text, line: 1} }

func (l *lineIndex) at(off int64) int {
	off = min(off, int64(len(l.text)))
	if off > l.off {
		l.line += bytes.Count(l.text[l.off:off], []byte("\n"))
		l.off = off
	}
	return l.line
}

// jsonValue reads one JSON value into a node. Keys stay in their order and
// duplicates stay in, for the strict walk to refuse.
func (r *jsonReader) value(depth int) (*yaml.Node, error) {
	dec, lines := r.dec, r.lines
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	if r.nodes++; r.nodes > maxParseNodes {
		return nil, errTooManyNodes
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	// The offset is now the token's end; a token holds no newline.
	line := lines.at(dec.InputOffset())
	switch v := tok.(type) {
	case json.Delim:
		kind, end := yaml.SequenceNode, json.Delim(']')
		if v == '{' {
			kind, end = yaml.MappingNode, '}'
		} else if v != '[' {
			return nil, errors.New("unexpected delimiter")
		}
		n := &yaml.Node{Kind: kind, Tag: map[yaml.Kind]string{yaml.MappingNode: "!!map", yaml.SequenceNode: "!!seq"}[kind], Line: line}
		for dec.More() {
			if kind == yaml.MappingNode {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				kl := lines.at(dec.InputOffset())
				ks, _ := k.(string)
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.DoubleQuotedStyle, Value: ks, Line: kl})
			}
			c, err := r.value(depth + 1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		if tok, err := dec.Token(); err != nil || tok != end {
			return nil, errors.New("unterminated")
		}
		return n, nil
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.DoubleQuotedStyle, Value: v, Line: line}, nil
	case json.Number:
		tag := "!!int"
		if bytes.ContainsAny([]byte(v), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v.String(), Line: line}, nil
	case bool:
		val := "false"
		if v {
			val = "true"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: val, Line: line}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: line}, nil
	}
	return nil, errors.New("unexpected token")
}
