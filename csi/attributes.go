package csi

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/manifest"
	"github.com/secretfs/secretfs/projection"
)

// Attribute keys of volume_context. Every other key outside
// podInfoPrefix is refused, so a typo such as `defaultmode` never passes
// silently.
const (
	attrSecretName      = "secretName"
	attrItems           = "items"
	attrDefaultMode     = "defaultMode"
	attrOptional        = "optional"
	attrChangeDetection = "changeDetection"
	attrTTL             = "ttl"
	attrSecretNamespace = "secretNamespace"
	attrBase64Keys      = "base64Keys"
	// attrSecretProviderClass selects a Secrets Store provider volume
	// (provider.go parses those).
	attrSecretProviderClass = "secretProviderClass"
	// attrSources lists several sources for one volume (sources.go).
	attrSources = "sources"

	// podInfoPrefix is kubelet's (podInfoOnMount, tokenRequests); keys
	// under it are never refused, new kubelets may add some.
	podInfoPrefix   = "csi.storage.k8s.io/"
	podNameKey      = podInfoPrefix + "pod.name"
	podNamespaceKey = podInfoPrefix + "pod.namespace"
	podUIDKey       = podInfoPrefix + "pod.uid"
	podSAKey        = podInfoPrefix + "serviceAccount.name"
	ephemeralKey    = podInfoPrefix + "ephemeral"
	tokensKey       = podInfoPrefix + "serviceAccount.tokens"
)

var knownAttrs = []string{attrSecretName, attrItems, attrDefaultMode, attrOptional,
	attrChangeDetection, attrTTL, attrSecretNamespace, attrBase64Keys, attrSecretProviderClass, attrSources,
	attrSubPathUpdates}

// staticSecretName stands in for the Secret's name when the data comes from
// the request's `secrets`: errors then read `secret "ns/nodePublishSecretRef" …`.
const staticSecretName = "nodePublishSecretRef"

// Attributes is a parsed volume_context: what to show and how to follow it.
type Attributes struct {
	Spec       projection.Spec
	Static     bool // the data is the request's `secrets` (no secretName)
	Base64Keys []string
	Strategy   cache.Strategy
	TTL        time.Duration
	Pod        PodInfo
	Persistent bool
	// Provider is set for a secretProviderClass volume: its files come
	// from a Secrets Store provider, not from a Secret.
	Provider *ProviderAttrs `json:",omitempty"`
	// Sources is set for a volume of several sources (sources.go); Spec
	// then holds what they share: namespace, defaultMode, fsGroup.
	Sources []SourceAttrs `json:",omitempty"`
	// SubPathUpdates: stable top-level names (subpath.go).
	SubPathUpdates bool `json:",omitempty"`
}

// PodInfo is what kubelet tells about the Pod (podInfoOnMount).
type PodInfo struct {
	Name, Namespace, UID, ServiceAccount string
	// Tokens is the raw serviceAccount.tokens JSON; never logged.
	Tokens string
}

// volumeOrigin is what a volume id tells about who wrote the attributes.
type volumeOrigin int

const (
	originUnknown    volumeOrigin = iota // a PV's handle: ephemeral says
	originController                     // our Controller's id: persistent
	originInline                         // kubelet's inline id: ephemeral, always
)

// ParseVolumeAttributes is ParseAttributes for the volume volumeID: an id
// of our Controller makes the volume persistent, kubelet's inline id
// (csi-<64 hex>) makes it ephemeral whatever
// csi.storage.k8s.io/ephemeral says, so a Pod's author cannot claim
// another namespace by writing ephemeral "false" into an inline volume.
func ParseVolumeAttributes(volumeID string, vc map[string]string, mountGroup string) (*Attributes, error) {
	origin := originUnknown
	switch {
	case isControllerID(volumeID):
		origin = originController
	case isInlineID(volumeID):
		origin = originInline
	}
	a, err := parseAttributes(vc, origin, mountGroup)
	return withSubPath(vc, a, err)
}

// isInlineID says id is kubelet's id of a CSI inline volume:
// "csi-" + hex(sha256(pod uid + volume name)).
func isInlineID(id string) bool {
	h, ok := strings.CutPrefix(id, "csi-")
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseAttributes turns volume_context into Attributes, applying the
// namespace rule (Attributes.namespace: an inline volume reads only its
// Pod's namespace). ours says the volume id was made by our
// Controller; mountGroup is volume_capability.mount.volume_mount_group.
// Errors name the attribute and map to InvalidArgument.
func ParseAttributes(vc map[string]string, ours bool, mountGroup string) (*Attributes, error) {
	origin := originUnknown
	if ours {
		origin = originController
	}
	a, err := parseAttributes(vc, origin, mountGroup)
	return withSubPath(vc, a, err)
}

func parseAttributes(vc map[string]string, origin volumeOrigin, mountGroup string) (*Attributes, error) {
	for k := range vc {
		if !slices.Contains(knownAttrs, k) && !strings.HasPrefix(k, podInfoPrefix) {
			return nil, fmt.Errorf("volume attribute %s is unknown (known: %s, and keys under %s)", shortKey(k), strings.Join(knownAttrs, ", "), podInfoPrefix)
		}
	}
	if _, ok := vc[attrSources]; ok {
		return parseSourcesAttributes(vc, origin, mountGroup)
	}
	if _, ok := vc[attrSecretProviderClass]; ok {
		return parseProviderAttributes(vc, mountGroup)
	}
	a := &Attributes{Pod: PodInfo{
		Name: vc[podNameKey], Namespace: vc[podNamespaceKey], UID: vc[podUIDKey],
		ServiceAccount: vc[podSAKey], Tokens: vc[tokensKey],
	}}
	s := &a.Spec
	s.SecretName = vc[attrSecretName]
	if _, ok := vc[attrSecretName]; ok && s.SecretName == "" {
		return nil, fmt.Errorf("volume attribute %s: must not be empty", attrSecretName)
	}
	if s.SecretName == "" {
		a.Static, s.SecretName = true, staticSecretName
	}
	if v, ok := vc[attrItems]; ok {
		items, err := parseItems(v)
		if err != nil {
			return nil, fmt.Errorf("volume attribute %s: %w", attrItems, err)
		}
		s.Items = items
	}
	if v, ok := vc[attrDefaultMode]; ok {
		m, err := parseMode(v)
		if err != nil {
			return nil, fmt.Errorf("volume attribute %s: %w", attrDefaultMode, err)
		}
		s.DefaultMode = &m
	}
	if v, ok := vc[attrOptional]; ok {
		// Only the two words: "yes", "1" or "True" are typos of intent
		// too often to guess.
		switch v {
		case "true":
			s.Optional = true
		case "false":
		default:
			return nil, fmt.Errorf("volume attribute %s: neither \"true\" nor \"false\"", attrOptional)
		}
	}
	var err error
	if a.Strategy, err = cache.ParseStrategy(vc[attrChangeDetection]); err != nil {
		// cache's message quotes the value.
		return nil, fmt.Errorf("volume attribute %s: unknown change detection strategy (want Watch, Cache or Get)", attrChangeDetection)
	}
	if v, ok := vc[attrTTL]; ok {
		if a.TTL, err = parseTTL(v, "1m"); err != nil {
			return nil, err
		}
	}
	if v, ok := vc[attrBase64Keys]; ok {
		if !a.Static {
			return nil, fmt.Errorf("volume attribute %s: only applies to nodePublishSecretRef data, not with %s", attrBase64Keys, attrSecretName)
		}
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				a.Base64Keys = append(a.Base64Keys, k)
			}
		}
	}
	if s.FSGroup, err = parseMountGroup(mountGroup); err != nil {
		return nil, err
	}
	if err := a.namespace(vc, origin); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("volume attributes: %w", err)
	}
	return a, nil
}

// parseMountGroup reads volume_mount_group (kubelet's fsGroup); "" is none.
func parseMountGroup(mountGroup string) (*int64, error) {
	if mountGroup == "" {
		return nil, nil
	}
	g, err := strconv.ParseInt(mountGroup, 10, 64)
	if err != nil || g < 0 || g > 1<<32-2 {
		return nil, errors.New("volume_mount_group: not a group ID")
	}
	return &g, nil
}

// namespace applies the rule that keeps a Pod inside its namespace: only a
// volume known to be persistent (its attributes written by an admin in a
// PV, not by the Pod's author) may name another namespace.
func (a *Attributes) namespace(vc map[string]string, origin volumeOrigin) error {
	eph, hasEph := vc[ephemeralKey]
	switch eph {
	case "", "true", "false":
	default:
		return fmt.Errorf("volume attribute %s: neither \"true\" nor \"false\"", ephemeralKey)
	}
	switch origin {
	case originInline:
		// kubelet's own id: the attributes are the Pod author's, and
		// so is any "ephemeral: false" among them.
		a.Persistent = false
	case originController:
		// kubelet says "true" for inline volumes, so "true" wins over
		// an id that looks like ours.
		a.Persistent = !(hasEph && eph == "true")
	default:
		a.Persistent = eph == "false"
	}
	podNS, secretNS := a.Pod.Namespace, vc[attrSecretNamespace]
	switch {
	case a.Persistent && secretNS != "":
		a.Spec.Namespace = secretNS
	case a.Persistent && podNS != "":
		a.Spec.Namespace = podNS
	case a.Persistent:
		return fmt.Errorf("volume attribute %s: required for a persistent volume when the pod namespace is unknown", attrSecretNamespace)
	case podNS == "":
		return fmt.Errorf("volume attribute %s is missing: the CSIDriver needs podInfoOnMount: true for inline volumes", podNamespaceKey)
	case secretNS != "" && secretNS != podNS:
		return fmt.Errorf("volume attribute %s: an inline volume may only read its pod's namespace %s", attrSecretNamespace, shortKey(podNS))
	default:
		a.Spec.Namespace = podNS
	}
	return nil
}

// parseItems reads a JSON or YAML list of {key, path, mode}. YAML is read
// as kubectl reads it (YAML 1.1: a leading 0 is octal); JSON numbers are
// decimal (256 = 0400); a string mode is always octal.
func parseItems(text string) ([]projection.Item, error) {
	var raw []map[string]json.RawMessage
	if err := unmarshalYAMLOrJSON(text, &raw); err != nil {
		return nil, err
	}
	items := make([]projection.Item, 0, len(raw))
	for i, r := range raw {
		var it projection.Item
		for f, v := range r {
			var err error
			switch f {
			case "key":
				err = decodeString(v, &it.Key)
			case "path":
				err = decodeString(v, &it.Path)
			case "mode":
				it.Mode, err = parseItemMode(v)
			default:
				err = fmt.Errorf("unknown field (want key, path, mode)")
			}
			if err != nil {
				return nil, fmt.Errorf("[%d].%s: %w", i, fieldName(f), err)
			}
		}
		if it.Key == "" {
			return nil, fmt.Errorf("[%d].key: required", i)
		}
		if it.Path == "" {
			return nil, fmt.Errorf("[%d].path: required", i)
		}
		items = append(items, it)
	}
	return items, nil
}

func parseItemMode(v json.RawMessage) (*int32, error) {
	if string(v) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		m, err := parseMode(s)
		return &m, err
	}
	n, err := strconv.ParseInt(string(v), 10, 32)
	if err != nil {
		return nil, errors.New("must be an integer or an octal string")
	}
	if n < 0 || n > projection.MaxMode {
		return nil, fmt.Errorf("%d (%#o) out of range 0-0777 (as a number it is decimal; write \"0400\" for octal)", n, n)
	}
	m := int32(n)
	return &m, nil
}

// unmarshalYAMLOrJSON reads YAML 1.1 the way kubectl does (JSON is a
// subset, so JSON text reads the same as through encoding/json), strictly
// and quietly through package manifest: duplicate or non-string keys are
// errors, and no error quotes the text.
func unmarshalYAMLOrJSON(text string, v any) error {
	js, err := manifest.YAMLToJSON([]byte(text), manifest.Options{})
	if err != nil {
		return err
	}
	if json.Unmarshal(js, v) != nil {
		return errors.New("not a list of {key, path, mode}")
	}
	return nil
}

// decodeString reads a JSON string; the decoder's message is not passed on.
func decodeString(v json.RawMessage, s *string) error {
	if json.Unmarshal(v, s) != nil {
		return errors.New("must be a string")
	}
	return nil
}

// maxNameInMessage is as long as a name in an error may be, as package
// manifest cuts keys: names are not secret, but the caller chooses their
// length, and a status or log line must stay short.
const maxNameInMessage = 64

// parseTTL reads the ttl attribute: a positive duration. The error names
// the attribute and an example, never the value.
func parseTTL(v, example string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("volume attribute %s: not a positive duration such as %s", attrTTL, example)
	}
	return d, nil
}

// shortKey quotes a name (an attribute key, a field, a namespace) for a
// message, cut at maxNameInMessage bytes.
func shortKey(k string) string {
	if len(k) > maxNameInMessage {
		return fmt.Sprintf("%q...", k[:maxNameInMessage])
	}
	return fmt.Sprintf("%q", k)
}

// fieldName is a field name for a path in a message: as it is if plain
// and short, else quoted and cut (shortKey).
func fieldName(f string) string {
	if len(f) > 0 && len(f) <= maxNameInMessage && strings.Trim(f, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
		return f
	}
	return shortKey(f)
}

// parseMode is projection.ParseMode with a message that does not repeat the
// value.
func parseMode(v string) (int32, error) {
	m, err := projection.ParseMode(v)
	if err != nil {
		return 0, fmt.Errorf("not an octal mode within 0-0777 such as 0400")
	}
	return m, nil
}
