package secret

import (
	"bytes"
	"maps"
)

// MaxSize is the limit on the total decoded data of one Secret (1 MiB).
const MaxSize = 1048576

// Secret is one validated v1/Secret with its data decoded.
type Secret struct {
	Namespace       string
	Name            string
	Type            string // "Opaque" when the manifest leaves it empty
	Data            map[string][]byte
	Immutable       bool
	Annotations     map[string]string
	ResourceVersion string
	// Origin says where the Secret came from (a file path, "kube",
	// "nodePublishSecretRef"); it only serves error messages.
	Origin string
}

// Ref is "namespace/name", the way errors and logs name a Secret.
func (s *Secret) Ref() string { return s.Namespace + "/" + s.Name }

// Size is the total number of decoded data bytes.
func (s *Secret) Size() int {
	n := 0
	for _, v := range s.Data {
		n += len(v)
	}
	return n
}

// SameContent reports whether two Secrets would project the same files:
// subscribers hear only of real content changes.
func (s *Secret) SameContent(o *Secret) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.Type == o.Type && s.Immutable == o.Immutable &&
		maps.EqualFunc(s.Data, o.Data, bytes.Equal)
}
