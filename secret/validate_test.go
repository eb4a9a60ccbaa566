package secret

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// secretValue is distinctive so tests can assert it never reaches an error.
const secretValue = "s3cr3t-VALUE-xyz"

var secretValue64 = base64.StdEncoding.EncodeToString([]byte(secretValue))

// checkInvalid asserts err is an *InvalidError naming every string in
// want and containing no value.
func checkInvalid(t *testing.T, err error, want ...string) {
	t.Helper()
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("want *InvalidError, got %T %v", err, err)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	for _, leak := range []string{secretValue, secretValue64, "s3cr3t"} {
		if strings.Contains(msg, leak) {
			t.Errorf("error %q leaks the value", msg)
		}
	}
}

func newSecret(typ string, kv ...string) *Secret {
	s := &Secret{Namespace: "ns1", Name: "obj", Type: typ, Data: map[string][]byte{}, Origin: "f.yaml"}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Data[kv[i]] = []byte(kv[i+1])
	}
	return s
}

func TestValidateKey(t *testing.T) {
	good := []string{"a", "A-b_c.d", ".secret-file", "tls.crt", ".a.b", strings.Repeat("k", 253), ".x"}
	for _, k := range good {
		if err := ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want ok", k, err)
		}
	}
	bad := []string{"", ".", "..", "..x", "...", "a/b", "a b", "é", "a\x00", strings.Repeat("k", 254), "a:b"}
	for _, k := range bad {
		if err := ValidateKey(k); err == nil {
			t.Errorf("ValidateKey(%q) ok, want error", k)
		}
	}
}

func TestValidateName(t *testing.T) {
	good := []string{"a", "my-secret", "a.b.c", "0abc", strings.Repeat("a", 253)}
	for _, n := range good {
		s := newSecret("", "k", secretValue)
		s.Name = n
		if err := Validate(s); err != nil {
			t.Errorf("name %q: %v", n, err)
		}
	}
	bad := []string{"", "My-secret", "-a", "a-", ".a", "a.", "a..b", "a_b", "a/b", strings.Repeat("a", 254)}
	for _, n := range bad {
		s := newSecret("", "k", secretValue)
		s.Name = n
		err := Validate(s)
		checkInvalid(t, err, "metadata.name", "f.yaml")
	}
}

func TestValidateNamespace(t *testing.T) {
	s := newSecret("", "k", secretValue)
	s.Namespace = "Bad_NS"
	checkInvalid(t, Validate(s), "metadata.namespace", "Bad_NS/obj")
	s = newSecret("", "k", secretValue)
	s.Namespace = ""
	if err := Validate(s); err != nil || s.Namespace != "default" {
		t.Errorf("empty namespace: %v, %q", err, s.Namespace)
	}
}

func TestValidateKeysNamed(t *testing.T) {
	for _, k := range []string{"..data", "a/b", "bad key", "."} {
		s := newSecret("", k, secretValue)
		checkInvalid(t, Validate(s), `"ns1/obj"`, fmt.Sprintf("key %q", k))
	}
}

func TestValidateSize(t *testing.T) {
	s := newSecret("")
	s.Data["a"] = make([]byte, MaxSize-10)
	s.Data["b"] = make([]byte, 10)
	if err := Validate(s); err != nil {
		t.Fatalf("exactly at limit: %v", err)
	}
	s.Data["c"] = []byte{1}
	checkInvalid(t, Validate(s), "ns1/obj", "1048577", "1048576")
}

func TestValidateTypeDefault(t *testing.T) {
	s := newSecret("", "k", "v")
	if err := Validate(s); err != nil || s.Type != "Opaque" {
		t.Fatalf("got %v, type %q", err, s.Type)
	}
	custom := newSecret("cloud-hosting.example.net/cloud-api-credentials", "k", "v")
	if err := Validate(custom); err != nil {
		t.Fatalf("custom type: %v", err)
	}
}

func TestValidateBuiltinTypes(t *testing.T) {
	const tok = "5emitj"
	boot := func(kv ...string) *Secret {
		s := newSecret(string(corev1.SecretTypeBootstrapToken), kv...)
		s.Name = "bootstrap-token-" + tok
		return s
	}
	sa := func(ann string) *Secret {
		s := newSecret(string(corev1.SecretTypeServiceAccountToken), "token", secretValue)
		if ann != "" {
			s.Annotations = map[string]string{corev1.ServiceAccountNameKey: ann}
		}
		return s
	}
	tests := []struct {
		name string
		s    *Secret
		want []string // nil: valid
	}{
		{"basic-auth username", newSecret(string(corev1.SecretTypeBasicAuth), "username", secretValue), nil},
		{"basic-auth password", newSecret(string(corev1.SecretTypeBasicAuth), "password", secretValue), nil},
		{"basic-auth none", newSecret(string(corev1.SecretTypeBasicAuth), "user", secretValue), []string{"username", "password", string(corev1.SecretTypeBasicAuth)}},
		{"ssh ok", newSecret(string(corev1.SecretTypeSSHAuth), "ssh-privatekey", secretValue), nil},
		{"ssh missing", newSecret(string(corev1.SecretTypeSSHAuth), "ssh-publickey", secretValue), []string{`key "ssh-privatekey"`}},
		{"tls ok", newSecret(string(corev1.SecretTypeTLS), "tls.crt", secretValue, "tls.key", secretValue), nil},
		{"tls no key", newSecret(string(corev1.SecretTypeTLS), "tls.crt", secretValue), []string{`key "tls.key"`}},
		{"tls no crt", newSecret(string(corev1.SecretTypeTLS), "tls.key", secretValue), []string{`key "tls.crt"`}},
		{"dockercfg ok", newSecret(string(corev1.SecretTypeDockercfg), ".dockercfg", `{"r":{"auth":"x"}}`), nil},
		{"dockercfg missing", newSecret(string(corev1.SecretTypeDockercfg), "config", "{}"), []string{`key ".dockercfg"`}},
		{"dockercfg bad json", newSecret(string(corev1.SecretTypeDockercfg), ".dockercfg", secretValue), []string{`key ".dockercfg"`, "JSON"}},
		{"dockerconfigjson ok", newSecret(string(corev1.SecretTypeDockerConfigJson), ".dockerconfigjson", `{"auths":{}}`), nil},
		{"dockerconfigjson not object", newSecret(string(corev1.SecretTypeDockerConfigJson), ".dockerconfigjson", `["`+secretValue+`"]`), []string{`key ".dockerconfigjson"`, "JSON object"}},
		{"dockerconfigjson bad", newSecret(string(corev1.SecretTypeDockerConfigJson), ".dockerconfigjson", `{"`+secretValue), []string{`key ".dockerconfigjson"`}},
		{"sa ok", sa("sa-name"), nil},
		{"sa no annotation", sa(""), []string{corev1.ServiceAccountNameKey}},
		{"bootstrap ok", boot("token-id", tok, "token-secret", "kq4gihvszzgn1p0r", "expiration", "2020-09-13T04:39:10Z"), nil},
		{"bootstrap no id", boot("token-secret", "kq4gihvszzgn1p0r"), []string{`key "token-id"`}},
		{"bootstrap no secret", boot("token-id", tok), []string{`key "token-secret"`}},
		{"bootstrap short id", boot("token-id", "abc", "token-secret", "kq4gihvszzgn1p0r"), []string{`key "token-id"`, "6"}},
		{"bootstrap upper id", boot("token-id", "ABCDEF", "token-secret", "kq4gihvszzgn1p0r"), []string{`key "token-id"`}},
		{"bootstrap bad secret", boot("token-id", tok, "token-secret", secretValue), []string{`key "token-secret"`, "16"}},
		{"bootstrap bad expiration", boot("token-id", tok, "token-secret", "kq4gihvszzgn1p0r", "expiration", secretValue), []string{`key "expiration"`, "RFC 3339"}},
		{"bootstrap wrong name", newSecret(string(corev1.SecretTypeBootstrapToken), "token-id", tok, "token-secret", "kq4gihvszzgn1p0r"), []string{"metadata.name", "bootstrap-token-<token-id>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.s)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			checkInvalid(t, err, append(tc.want, fmt.Sprintf("%q", tc.s.Ref()), "f.yaml")...)
		})
	}
}

func TestFromData(t *testing.T) {
	s, err := FromData("ns1", "", "", map[string][]byte{"user": []byte(secretValue)}, "nodePublishSecretRef")
	if err != nil || s.Type != "Opaque" || string(s.Data["user"]) != secretValue {
		t.Fatalf("got %+v, %v", s, err)
	}
	_, err = FromData("ns1", "", "", map[string][]byte{"bad/key": []byte(secretValue)}, "nodePublishSecretRef")
	checkInvalid(t, err, "nodePublishSecretRef", `key "bad/key"`)
	_, err = FromData("ns1", "", "", map[string][]byte{"big": make([]byte, MaxSize+1)}, "nodePublishSecretRef")
	checkInvalid(t, err, "nodePublishSecretRef", "1048577", "1048576")
	_, err = FromData("ns1", "x", string(corev1.SecretTypeTLS), map[string][]byte{"tls.crt": nil}, "nodePublishSecretRef")
	checkInvalid(t, err, `"ns1/x"`, "nodePublishSecretRef", `key "tls.key"`)
}

func TestInvalidErrorFormat(t *testing.T) {
	e := &InvalidError{Object: "ns/name", Field: `data key "foo"`, Reason: "illegal base64"}
	if got, want := e.Error(), `secret "ns/name": data key "foo": illegal base64`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e.Origin = "/d/a.yaml"
	if got, want := e.Error(), `secret "ns/name" (/d/a.yaml): data key "foo": illegal base64`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
