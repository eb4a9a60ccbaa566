package manifesttest

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/secretfs/secretfs/manifest"
)

// Marker is the value fuzz tests plant: long and random, so that it is in
// an error only if the error quotes the input.
const Marker = "Zq7xK9mW2vRt4pLs8nBdQ3"

// Named reports whether marker sits somewhere an error may rightly name:
// a map key, a tag, an anchor or alias name, or the value of one of the
// given fields (such as "name", "kind", "path"), which errors quote as the
// names they are. A text that does not parse names nothing: a syntax error
// shows only a line.
func Named(text []byte, marker string, fields ...string) bool {
	docs, err := manifest.Documents(text)
	if err != nil {
		return false
	}
	for _, d := range docs {
		if named(d, marker, fields, map[*yaml.Node]bool{}) {
			return true
		}
	}
	return false
}

func named(n *yaml.Node, marker string, fields []string, seen map[*yaml.Node]bool) bool {
	if n == nil || seen[n] {
		return false
	}
	seen[n] = true
	if strings.Contains(n.Tag, marker) || strings.Contains(n.Anchor, marker) ||
		n.Kind == yaml.AliasNode && strings.Contains(n.Value, marker) {
		return true
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && strings.Contains(k.Value, marker) {
				return true
			}
			if slices.Contains(fields, k.Value) && v.Kind == yaml.ScalarNode && strings.Contains(v.Value, marker) {
				return true
			}
		}
	}
	for _, c := range n.Content {
		if named(c, marker, fields, seen) {
			return true
		}
	}
	return n.Kind == yaml.AliasNode && named(n.Alias, marker, fields, seen)
}
