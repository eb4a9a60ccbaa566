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
