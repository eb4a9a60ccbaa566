package manifest

import "go.yaml.in/yaml/v3"

// Lookup finds the value of key in a map node without converting the rest:
// callers read an object's kind and name this way before deciding whether
// the object is theirs. nil when n is not a map or lacks the key; a key
// written twice is an *Error, since either value could be the one meant.
func Lookup(n *yaml.Node, key string) (*yaml.Node, error) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	var found *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" || k.Value != key {
			continue
		}
		if found != nil {
			return nil, &Error{Path: child("", key), Line: k.Line, Reason: "duplicate key"}
		}
		found = deref(n.Content[i+1])
	}
	return found, nil
}

// Text is the string a scalar node holds, and false for anything that is
// not a plain or quoted string (a number, a map, a tagged value).
func Text(n *yaml.Node) (string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || yaml11Bool(n) {
		return "", false
	}
	if explicit(n) && n.Tag != "!!str" {
		return "", false
	}
	return n.Value, true
}

// LookupText is the string value of key in map n: "" when absent or not a
// string, an *Error when the key is written twice (see Lookup).
func LookupText(n *yaml.Node, key string) (string, error) {
	v, err := Lookup(n, key)
	if err != nil {
		return "", err
	}
	s, _ := Text(v)
	return s, nil
}

// deref follows one alias.
func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}
