// Package manifesttest helps fuzz tests of the code that decodes YAML
// through package manifest: it tells where in a text a planted marker
// value ended up, so a test knows whether an error may name it.
package manifesttest
