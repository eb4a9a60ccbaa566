package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/secretfs/secretfs/backend"
	decode "github.com/secretfs/secretfs/manifest"
)

// classAPIVersion is the only SecretProviderClass version served.
const classAPIVersion = "secrets-store.csi.x-k8s.io/v1"

var _ backend.ClassReader = (*Backend)(nil)

// GetClass reads the SecretProviderClass namespace/name from the folder's
// manifests now (a class without namespace is in "default", as a Secret),
// through the same file checks (regular files only, MaxManifestSize) and
// strict decoder as Secrets. Other kinds are ignored. Defined twice: an
// error naming both files. Not found while a file could not be read or
// parsed: ErrUnreachable, as for Secrets, since the class may be in it.
func (b *Backend) GetClass(ctx context.Context, namespace, name string) (*backend.ProviderClass, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ref := namespace + "/" + name
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, fmt.Errorf("secretproviderclass %s: %w: %w", ref, ErrUnreachable, err)
	}
	var found []*backend.ProviderClass
	var files []string
	var broken error
	for _, e := range entries {
		if !isManifest(e.Name()) || e.IsDir() {
			continue
		}
		path := filepath.Join(b.dir, e.Name())
		classes, err := readClasses(path)
		if err != nil {
			if broken == nil {
				broken = fmt.Errorf("%s: %w", path, err)
			}
			continue
		}
		for _, c := range classes {
			if c.Namespace == namespace && c.Name == name {
				found = append(found, c)
				files = append(files, path)
			}
		}
	}
	switch {
	case len(found) > 1:
		return nil, fmt.Errorf("secretproviderclass %s: defined more than once: in %s", ref, strings.Join(files, " and "))
	case len(found) == 1:
		return found[0], nil
	case broken != nil:
		return nil, fmt.Errorf("secretproviderclass %s: %w: %w", ref, ErrUnreachable, broken)
	}
	return nil, fmt.Errorf("secretproviderclass %s: not in any manifest in %s: %w", ref, b.dir, backend.ErrClassNotFound)
}

// readClasses returns the SecretProviderClasses of one manifest file. A
// file left out for Secrets (not regular, too big) is left out here too,
// silently: the Secret scan already names it.
func readClasses(path string) ([]*backend.ProviderClass, error) {
	real, _, lo, err := statManifest(path)
	if errors.Is(err, errGone) || lo != nil {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	data, lo, err := readManifest(real)
	if errors.Is(err, errGone) || lo != nil {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer clear(data) // the folder's Secrets are in the same files
	if !bytes.Contains(data, []byte("SecretProviderClass")) {
		return nil, nil // no class here: a folder of Secrets costs no parse
	}
	docs, err := decode.Documents(data)
	if err != nil {
		return nil, err
	}
	var out []*backend.ProviderClass
	for i, n := range docs {
		if out, err = appendClasses(out, n); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
	}
	return out, nil
}

// classStrict holds parameters to a map of strings, as the CRD's schema.
var classStrict = decode.Options{StringMaps: []string{"spec.parameters"}}

// appendClasses adds the class n is, or those of a List n is; other kinds
// are looked at no further (their errors are not ours to report).
func appendClasses(out []*backend.ProviderClass, n *yaml.Node) ([]*backend.ProviderClass, error) {
	kind, err := decode.LookupText(n, "kind")
	if err != nil {
		return nil, err
	}
	switch kind {
	case "List", "SecretProviderClassList":
		items, err := decode.Lookup(n, "items")
		if err != nil || items == nil || items.Kind != yaml.SequenceNode {
			return out, err
		}
		for i, item := range items.Content {
			if out, err = appendClasses(out, item); err != nil {
				return nil, fmt.Errorf("items[%d]: %w", i, err)
			}
		}
		return out, nil
	case "SecretProviderClass":
	default:
		return out, nil
	}
	if v, err := decode.LookupText(n, "apiVersion"); err != nil || v != classAPIVersion {
		return out, err // v1alpha1 and others: not served
	}
	js, err := decode.ToJSON(n, classStrict)
	if err != nil {
		return nil, fmt.Errorf("SecretProviderClass: %w", err)
	}
	var d struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec struct {
			Provider   string            `json:"provider"`
			Parameters map[string]string `json:"parameters"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(js, &d); err != nil {
		return nil, errors.New("SecretProviderClass: metadata or spec is not of the CRD's shape")
	}
	ns := d.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	return append(out, &backend.ProviderClass{Namespace: ns, Name: d.Metadata.Name,
		Provider: d.Spec.Provider, Parameters: d.Spec.Parameters}), nil
}
