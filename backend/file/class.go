package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/secretfs/secretfs/backend"
)

// maxClassFile is the largest manifest read for classes (SPEC §3's limit
// for any manifest of the folder).
const maxClassFile = 16 << 20

// classAPIVersion is the only SecretProviderClass version served.
const classAPIVersion = "secrets-store.csi.x-k8s.io/v1"

var _ backend.ClassReader = (*Backend)(nil)

// GetClass reads the SecretProviderClass namespace/name from the folder's
// manifests now (a class without namespace is in "default", as a Secret).
// Other kinds are ignored. Defined twice: an error naming both files.
// Not found while a file could not be read or parsed: ErrUnreachable, as
// for Secrets, since the class may be in that file.
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
				broken = err
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

// classDoc is one manifest document as far as classes go.
type classDoc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Provider   string            `json:"provider"`
		Parameters map[string]string `json:"parameters"`
	} `json:"spec"`
}

// readClasses returns the SecretProviderClasses of one manifest file.
// Only regular files are opened (a FIFO would block us); errors name the
// file and the document, never their text.
func readClasses(path string) ([]*backend.ProviderClass, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, nil // gone, dangling or not a regular file: not a manifest
	}
	if st.Size > maxClassFile {
		return nil, fmt.Errorf("%s: %d bytes, more than the limit %d", path, st.Size, maxClassFile)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer clear(data) // the folder's Secrets are in the same files
	if !bytes.Contains(data, []byte("SecretProviderClass")) {
		return nil, nil // no class here: skip parsing a folder of Secrets at every refresh
	}
	var out []*backend.ProviderClass
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: not readable YAML", path, n)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		if out, err = appendClasses(out, doc); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, n, err)
		}
	}
}

func appendClasses(out []*backend.ProviderClass, doc []byte) ([]*backend.ProviderClass, error) {
	// A quick look first: documents of other kinds (Secrets) may hold
	// anything, and their errors are not ours to report.
	var head struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return nil, errors.New("not valid YAML or JSON")
	}
	switch head.Kind {
	case "List":
		for i, item := range head.Items {
			var err error
			if out, err = appendClasses(out, item); err != nil {
				return nil, fmt.Errorf("items[%d]: %w", i, err)
			}
		}
		return out, nil
	case "SecretProviderClass":
	default:
		return out, nil
	}
	var d classDoc
	if err := yaml.Unmarshal(doc, &d); err != nil {
		return nil, errors.New("SecretProviderClass: spec is not {provider, parameters: map of strings}")
	}
	if d.APIVersion != classAPIVersion {
		return out, nil // v1alpha1 and others: not served
	}
	ns := d.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	return append(out, &backend.ProviderClass{Namespace: ns, Name: d.Metadata.Name,
		Provider: d.Spec.Provider, Parameters: d.Spec.Parameters}), nil
}
