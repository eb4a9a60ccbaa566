// Package secret holds the Kubernetes v1/Secret model: parsing manifests,
// merging stringData into data, and the validation rules the API server
// applies to a Secret (names, keys, types and the keys each built-in type
// requires), plus the env and exec view of one (env.go). Values are never
// put into errors or logs; only keys, names and sizes.
//
// Manifest text is decoded by package manifest, strictly (duplicate keys,
// non-string keys and tagged or non-string values in data and stringData
// are errors) and quietly (no decoder message is passed on). Names and keys
// are checked by apimachinery's validation package and the built-in types
// are k8s.io/api/core/v1's, so the rules are the API server's own.
package secret
