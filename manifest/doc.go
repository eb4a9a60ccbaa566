// Package manifest is the one place where YAML or JSON text from a user
// becomes data: manifest files of the file: source (secret.ParseManifests)
// and the CSI items attribute (csi.ParseAttributes) both decode through it.
//
// It reads text with the go.yaml.in/yaml/v3 node API and walks the tree
// itself, strictly, instead of letting a decoder convert it, for two
// reasons:
//
//  1. Strictness. Duplicate keys, null, non-string and complex keys,
//     merge keys, and tags that do not fit their value are errors. The
//     maps listed in Options.StringMaps (a Secret's data and stringData)
//     must be untagged maps of plain strings: a value that YAML reads as a
//     number, a boolean, a timestamp or binary is refused, as kubectl
//     refuses it, instead of being turned into some text.
//  2. Quiet errors. Decoder messages quote the input ("cannot decode !!str
//     `hunter2` as a !!int"), and the input holds secret values. Errors of
//     this package are *Error or *SyntaxError: a key path, a line and a
//     fixed reason, never the text of the input nor of a library error.
//
// The result is JSON text, which callers decode with encoding/json into
// the shapes they know. Plain scalars resolve as kubectl (YAML 1.1) reads
// them: yes/no/on/off are booleans and a number with a leading 0 is octal.
package manifest
