package secret

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// bootstrap token fields, as the token authenticator checks them.
var (
	bootstrapIDRE  = regexp.MustCompile(`^[a-z0-9]{6}$`)
	bootstrapSecRE = regexp.MustCompile(`^[a-z0-9]{16}$`)
)

// ValidateKey checks a data key with the API server's rule
// (validation.IsConfigMapKey): [-._a-zA-Z0-9]+, at most 253 characters,
// not "." or "..", not starting with "..", which also keeps a key clear of
// kubelet's "..data" and "..<timestamp>" entries. The library's reasons
// describe the rule and never repeat the key.
func ValidateKey(key string) error {
	return reasons(validation.IsConfigMapKey(key))
}

// reasons joins the messages of an apimachinery validation function.
func reasons(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// Validate checks the API server's rules (name, namespace, keys, type and
// the keys its type requires) on a Secret whose data is already
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
		}
		if err := reasons(validation.IsDNS1123Subdomain(s.Name)); err != nil {
			return invalid(s, "metadata.name", err.Error())
		}
	}
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	if err := reasons(validation.IsDNS1123Label(s.Namespace)); err != nil {
		return invalid(s, "metadata.namespace", err.Error())
	}
	for _, k := range slices.Sorted(maps.Keys(s.Data)) {
		if err := ValidateKey(k); err != nil {
			return invalid(s, fmt.Sprintf("key %q", k), err.Error())
		}
	}
	if n := s.Size(); n > MaxSize {
		return invalid(s, "data", fmt.Sprintf("total decoded size %d bytes exceeds the limit of %d bytes", n, MaxSize))
	}
	if s.Type == "" {
		s.Type = string(corev1.SecretTypeOpaque)
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
	switch corev1.SecretType(s.Type) {
	case corev1.SecretTypeBasicAuth:
		_, u := s.Data[corev1.BasicAuthUsernameKey]
		_, p := s.Data[corev1.BasicAuthPasswordKey]
		if !u && !p {
			return invalid(s, "data", fmt.Sprintf("type %s requires key %q or %q", s.Type, corev1.BasicAuthUsernameKey, corev1.BasicAuthPasswordKey))
		}
	case corev1.SecretTypeSSHAuth:
		return need(corev1.SSHAuthPrivateKey)
	case corev1.SecretTypeTLS:
		return need(corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	case corev1.SecretTypeDockercfg, corev1.SecretTypeDockerConfigJson:
		key := corev1.DockerConfigKey
		if s.Type == string(corev1.SecretTypeDockerConfigJson) {
			key = corev1.DockerConfigJsonKey
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
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			return invalid(s, fmt.Sprintf("metadata.annotations[%q]", corev1.ServiceAccountNameKey),
				fmt.Sprintf("is required by type %s", s.Type))
		}
	case corev1.SecretTypeBootstrapToken:
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
