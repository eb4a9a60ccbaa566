package csi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/secretfs/secretfs/manifest"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
)

// This file parses the `sources` attribute: several Secrets (and
// Secrets Store provider classes) in one volume, in the shape of
// kubelet's projected volume. sources_mount.go mounts such a volume.

// SourceAttrs is one entry of `sources`: exactly one of Secret and
// Class.
type SourceAttrs struct {
	Secret *SecretSource `json:",omitempty"`
	// Class is a secretProviderClass of the pod's namespace, whose
	// provider's files join the volume.
	Class string `json:",omitempty"`
}

// SecretSource is a projected volume's secret source: name, items,
// optional. defaultMode and fsGroup are the volume's.
type SecretSource struct {
	Name     string
	Items    []projection.Item `json:",omitempty"`
	Optional bool              `json:",omitempty"`
}

// sourcesAttrs are the attributes a volume with sources accepts besides
// kubelet's pod info keys; items and optional belong in each source.
var sourcesAttrs = []string{attrSources, attrDefaultMode, attrChangeDetection, attrTTL, attrSecretNamespace, attrSubPathUpdates}

// parseSourcesAttributes is ParseAttributes for a volume with `sources`.
func parseSourcesAttributes(vc map[string]string, origin volumeOrigin, mountGroup string) (*Attributes, error) {
	for _, k := range slices.Sorted(maps.Keys(vc)) {
		switch {
		case k == attrSecretName || k == attrSecretProviderClass:
			return nil, fmt.Errorf("volume attributes %s and %s: a volume shows its sources, or one Secret or provider class, not both", attrSources, k)
		case strings.HasPrefix(k, podInfoPrefix), slices.Contains(sourcesAttrs, k):
		default: // known, else parseAttributes refused it
			return nil, fmt.Errorf("volume attribute %s: does not apply with %s (set it in each source; allowed: %s)", k, attrSources, strings.Join(sourcesAttrs, ", "))
		}
	}
	srcs, err := parseSources(vc[attrSources])
	if err != nil {
		return nil, fmt.Errorf("volume attribute %s: %w", attrSources, err)
	}
	// The rest is one Secret's attributes without the Secret: defaultMode,
	// changeDetection, ttl, the namespace rule and fsGroup. Spec's name
	// only names the volume in logs ("ns/(sources)"): no Secret is
	// called so.
	rest := maps.Clone(vc)
	delete(rest, attrSources)
	rest[attrSecretName] = "(sources)"
	a, err := parseAttributes(rest, origin, mountGroup)
	if err != nil {
		return nil, err
	}
	a.Sources = srcs
	for _, s := range srcs {
		if s.Class != "" && a.Pod.Namespace == "" {
			return nil, fmt.Errorf("volume attribute %s is missing: a %s is read from the pod's namespace, so the CSIDriver needs podInfoOnMount: true", podNamespaceKey, attrSecretProviderClass)
		}
	}
	for i, spec := range a.sourceSpecs() {
		if spec == nil {
			continue
		}
		if err := spec.Validate(); err != nil {
			return nil, fmt.Errorf("volume attribute %s: [%d].secret: %w", attrSources, i, err)
		}
	}
	return a, nil
}

// parseSources reads the JSON or YAML list of `sources`. Errors name the
// entry and field ("[1].secret.itemz: unknown field"), never a value.
func parseSources(text string) ([]SourceAttrs, error) {
	js, err := manifest.YAMLToJSON([]byte(text), manifest.Options{})
	if err != nil {
		return nil, err
	}
	var raw []map[string]json.RawMessage
	if json.Unmarshal(js, &raw) != nil {
		return nil, errors.New(`not a list of sources such as [{"secret": {"name": "db"}}]`)
	}
	if len(raw) == 0 {
		return nil, errors.New("no source in the list")
	}
	out := make([]SourceAttrs, len(raw))
	for i, r := range raw {
		for _, f := range slices.Sorted(maps.Keys(r)) {
			var err error
			switch f {
			case "secret":
				out[i].Secret, err = parseSecretSource(r[f])
			case "secretProviderClass":
				out[i].Class, err = parseClassSource(r[f])
			default:
				err = errors.New(": unknown field (want secret or secretProviderClass)")
			}
			if err != nil {
				return nil, fmt.Errorf("[%d].%s%w", i, fieldName(f), err)
			}
		}
		if len(r) != 1 {
			return nil, fmt.Errorf("[%d]: want exactly one of secret and secretProviderClass", i)
		}
	}
	return out, nil
}

// parseSecretSource reads {name, items, optional}; errors start with the
// field (".name: …", or ": …" for the whole).
func parseSecretSource(v json.RawMessage) (*SecretSource, error) {
	var r map[string]json.RawMessage
	if json.Unmarshal(v, &r) != nil {
		return nil, errors.New(": not a map of name, items, optional")
	}
	s := &SecretSource{}
	for _, f := range slices.Sorted(maps.Keys(r)) {
		var err error
		switch f {
		case "name":
			err = decodeName(r[f], &s.Name)
		case "items":
			s.Items, err = parseItems(string(r[f]))
		case "optional":
			s.Optional, err = decodeBool(r[f])
		default:
			err = errors.New("unknown field (want name, items, optional)")
		}
		if err != nil {
			return nil, fmt.Errorf(".%s: %w", fieldName(f), err)
		}
	}
	if s.Name == "" {
		return nil, errors.New(".name: required")
	}
	return s, nil
}

// decodeBool reads true or false, also as the strings "true" and "false"
// (the words the attribute optional takes).
func decodeBool(v json.RawMessage) (bool, error) {
	var b bool
	if json.Unmarshal(v, &b) == nil {
		return b, nil
	}
	switch string(v) {
	case `"true"`:
		return true, nil
	case `"false"`:
		return false, nil
	}
	return false, errors.New("must be true or false")
}

// parseClassSource reads {name} of a secretProviderClass source.
func parseClassSource(v json.RawMessage) (string, error) {
	var r map[string]json.RawMessage
	if json.Unmarshal(v, &r) != nil {
		return "", errors.New(": not a map with a name")
	}
	var name string
	for _, f := range slices.Sorted(maps.Keys(r)) {
		if f != "name" {
			return "", fmt.Errorf(".%s: unknown field (want name)", fieldName(f))
		}
		if err := decodeName(r[f], &name); err != nil {
			return "", fmt.Errorf(".name: %w", err)
		}
	}
	if name == "" {
		return "", errors.New(".name: required")
	}
	return name, nil
}

// decodeName reads an object name (a Secret's, a class's): a DNS
// subdomain, as the API server requires.
func decodeName(v json.RawMessage, name *string) error {
	if err := decodeString(v, name); err != nil {
		return err
	}
	if errs := validation.IsDNS1123Subdomain(*name); len(errs) > 0 {
		return fmt.Errorf("not a valid object name: %s", errs[0])
	}
	return nil
}

// sourceSpecs is the Spec of each Secret source (by index; nil for a
// class), in the volume's namespace with its defaultMode and fsGroup.
func (a *Attributes) sourceSpecs() []*projection.Spec {
	specs := make([]*projection.Spec, len(a.Sources))
	for i, s := range a.Sources {
		if s.Secret == nil {
			continue
		}
		specs[i] = &projection.Spec{Namespace: a.Spec.Namespace, SecretName: s.Secret.Name, Items: s.Secret.Items,
			Optional: s.Secret.Optional, DefaultMode: a.Spec.DefaultMode, FSGroup: a.Spec.FSGroup}
	}
	return specs
}

// mountedSources describes the sources for package mounted: Secrets
// followed through the cache, classes fed by their provider entries.
func (a *Attributes) mountedSources() []mounted.Source {
	if len(a.Sources) == 0 {
		return nil
	}
	out := make([]mounted.Source, len(a.Sources))
	for i, spec := range a.sourceSpecs() {
		if spec != nil {
			out[i].Spec = *spec
		} else {
			out[i].Fed = fmt.Sprintf("%s %q", attrSecretProviderClass, a.Pod.Namespace+"/"+a.Sources[i].Class)
		}
	}
	return out
}

// hasClasses says some source is a secretProviderClass.
func (a *Attributes) hasClasses() bool {
	return slices.ContainsFunc(a.Sources, func(s SourceAttrs) bool { return s.Class != "" })
}
