package secret

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Secret types with rules of their own (SPEC §1), as the API server and the
// bootstrap token authenticator check them.
const (
	TypeOpaque           = "Opaque"
	TypeServiceAccount   = "kubernetes.io/service-account-token"
	TypeDockercfg        = "kubernetes.io/dockercfg"
	TypeDockerConfigJSON = "kubernetes.io/dockerconfigjson"
	TypeBasicAuth        = "kubernetes.io/basic-auth"
	TypeSSHAuth          = "kubernetes.io/ssh-auth"
	TypeTLS              = "kubernetes.io/tls"
	TypeBootstrapToken   = "bootstrap.kubernetes.io/token"

	// ServiceAccountNameAnnotation must be set on service-account-token Secrets.
	ServiceAccountNameAnnotation = "kubernetes.io/service-account.name"
)

var (
	// Same expressions as k8s.io/apimachinery/pkg/util/validation.
	dns1123Label     = `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
	dns1123Subdomain = regexp.MustCompile(`^` + dns1123Label + `(\.` + dns1123Label + `)*$`)
	dns1123LabelRE   = regexp.MustCompile(`^` + dns1123Label + `$`)
	keyRE            = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	bootstrapIDRE    = regexp.MustCompile(`^[a-z0-9]{6}$`)
	bootstrapSecRE   = regexp.MustCompile(`^[a-z0-9]{16}$`)
)

// ValidateKey checks a data key (IsConfigMapKey in Kubernetes). The key is
// a file name, so it also keeps clear of kubelet's "..data" and
// "..<timestamp>" entries. The returned reason does not repeat the key.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("must not be empty")
	case len(key) > 253:
		return fmt.Errorf("must be at most 253 characters, has %d", len(key))
	case !keyRE.MatchString(key):
		return fmt.Errorf("must consist of alphanumeric characters, '-', '_' or '.'")
	case key == "." || key == "..":
		return fmt.Errorf("must not be '.' or '..'")
	case strings.HasPrefix(key, ".."):
		return fmt.Errorf("must not start with '..'")
	}
	return nil
}

// Validate checks every rule of SPEC §1 on a Secret whose data is already
// decoded and merged. It sets an empty Type to "Opaque" and an empty
// Namespace to "default". Errors are
// *InvalidError and never contain a value.
func Validate(s *Secret) error {
	return validate(s, true)
}

// validate is Validate; checkName is false for data that never was an API
// object (nodePublishSecretRef), which has no name of its own.
func validate(s *Secret, checkName bool) error {
	if checkName || s.Name != "" {
		switch {
		case s.Name == "":
			return invalid(s, "metadata.name", "is required")
		case len(s.Name) > 253:
			return invalid(s, "metadata.name", fmt.Sprintf("must be at most 253 characters, has %d", len(s.Name)))
		case !dns1123Subdomain.MatchString(s.Name):
			return invalid(s, "metadata.name", "must be a DNS subdomain: lowercase alphanumerics, '-' and '.', starting and ending with an alphanumeric")
		}
	}
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	if len(s.Namespace) > 63 || !dns1123LabelRE.MatchString(s.Namespace) {
		return invalid(s, "metadata.namespace", "must be a DNS label: at most 63 lowercase alphanumerics or '-', starting and ending with an alphanumeric")
	}
	for _, k := range sortedKeys(s.Data) {
		if err := ValidateKey(k); err != nil {
			return invalid(s, fmt.Sprintf("key %q", k), err.Error())
		}
	}
	if n := s.Size(); n > MaxSize {
		return invalid(s, "data", fmt.Sprintf("total decoded size %d bytes exceeds the limit of %d bytes", n, MaxSize))
	}
	if s.Type == "" {
		s.Type = TypeOpaque
	}
	return validateType(s)
}

// validateType applies the extra rules of the built-in types.
func validateType(s *Secret) error {
	need := func(keys ...string) error {
		for _, k := range keys {
			if _, ok := s.Data[k]; !ok {
				return invalid(s, fmt.Sprintf("key %q", k), fmt.Sprintf("is required by type %s", s.Type))
			}
		}
		return nil
	}
	switch s.Type {
	case TypeBasicAuth:
		_, u := s.Data["username"]
		_, p := s.Data["password"]
		if !u && !p {
			return invalid(s, "data", fmt.Sprintf("type %s requires key \"username\" or \"password\"", s.Type))
		}
	case TypeSSHAuth:
		return need("ssh-privatekey")
	case TypeTLS:
		return need("tls.crt", "tls.key")
	case TypeDockercfg, TypeDockerConfigJSON:
		key := ".dockercfg"
		if s.Type == TypeDockerConfigJSON {
			key = ".dockerconfigjson"
		}
		if err := need(key); err != nil {
			return err
		}
		// The API server unmarshals into a map: a JSON object (or null).
		// The json error text may quote bytes of the value; only its offset is used.
		var m map[string]any
		if err := json.Unmarshal(s.Data[key], &m); err != nil {
			reason := "must hold a JSON object"
			if se, ok := err.(*json.SyntaxError); ok {
				reason = fmt.Sprintf("is not valid JSON (syntax error at byte %d)", se.Offset)
			}
			return invalid(s, fmt.Sprintf("key %q", key), reason)
		}
	case TypeServiceAccount:
		if s.Annotations[ServiceAccountNameAnnotation] == "" {
			return invalid(s, fmt.Sprintf("metadata.annotations[%q]", ServiceAccountNameAnnotation),
				fmt.Sprintf("is required by type %s", s.Type))
		}
	case TypeBootstrapToken:
		return validateBootstrap(s, need)
	}
	return nil
}

// validateBootstrap checks a bootstrap token Secret as the token
// authenticator reads it. The reasons describe the format, never the token.
func validateBootstrap(s *Secret, need func(...string) error) error {
	if err := need("token-id", "token-secret"); err != nil {
		return err
	}
	id := string(s.Data["token-id"])
	if !bootstrapIDRE.MatchString(id) {
		return invalid(s, `key "token-id"`, "must be 6 characters [a-z0-9]")
	}
	if !bootstrapSecRE.MatchString(string(s.Data["token-secret"])) {
		return invalid(s, `key "token-secret"`, "must be 16 characters [a-z0-9]")
	}
	if s.Name != "bootstrap-token-"+id {
		return invalid(s, "metadata.name", "must be bootstrap-token-<token-id>")
	}
	if exp, ok := s.Data["expiration"]; ok {
		if _, err := time.Parse(time.RFC3339, string(exp)); err != nil {
			return invalid(s, `key "expiration"`, "must be a time in RFC 3339 format")
		}
	}
	return nil
}

// FromData builds and validates a Secret from already-decoded data, such as
// the map CSI passes from nodePublishSecretRef. An empty name is allowed
// there: errors then name the origin only. The map is copied.
func FromData(namespace, name, typ string, data map[string][]byte, origin string) (*Secret, error) {
	s := &Secret{Namespace: namespace, Name: name, Type: typ, Data: make(map[string][]byte, len(data)), Origin: origin}
	for k, v := range data {
		s.Data[k] = v
	}
	if err := validate(s, false); err != nil {
		return nil, err
	}
	return s, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
