// Package secret holds the Kubernetes v1/Secret model: parsing manifests,
// merging stringData into data and every validation rule of SPEC §1.
// Values are never put into errors or logs; only keys, names and sizes.
//
// Manifest text is decoded by package manifest, strictly (duplicate keys,
// non-string keys and tagged or non-string values in data and stringData
// are errors) and quietly (no decoder message is passed on). Names and keys
// are checked by apimachinery's validation package and the built-in types
// are k8s.io/api/core/v1's, so the rules are the API server's own.
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
