package secret

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The Secret manifests of the Kubernetes "Secrets" page (seed-secrets-ko.txt),
// verbatim, comments included.
const (
	seedEdited = `# 아래 오브젝트를 수정한다. '#'로 시작하는 줄은 무시되고,
# 빈 파일을 저장하면 편집이 취소된다. 이 파일을 저장하는 도중에 오류가 발생하면
# 관련 오류와 함께 파일이 다시 열릴 것이다.
#
apiVersion: v1
data:
  username: YWRtaW4=
  password: MWYyZDFlMmU2N2Rm
kind: Secret
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: { ... }
  creationTimestamp: 2020-01-22T18:41:56Z
  name: mysecret
  namespace: default
  resourceVersion: "164619"
  uid: cfee02d6-c137-11e5-8d73-42010af00002
type: Opaque
`
	seedEnv = `apiVersion: v1
kind: Secret
metadata:
  name: mysecret
type: Opaque
data:
  USER_NAME: YWRtaW4=
  PASSWORD: MWYyZDFlMmU2N2Rm
`
	seedDotfile = `apiVersion: v1
kind: Secret
metadata:
  name: dotfile-secret
data:
  .secret-file: dmFsdWUtMg0KDQo=
---
apiVersion: v1
kind: Pod
metadata:
  name: secret-dotfiles-pod
spec:
  volumes:
  - name: secret-volume
    secret:
      secretName: dotfile-secret
  containers:
  - name: dotfile-test-container
    image: k8s.gcr.io/busybox
    command:
    - ls
    - "-l"
    - "/etc/secret-volume"
    volumeMounts:
    - name: secret-volume
      readOnly: true
      mountPath: "/etc/secret-volume"
`
	seedSA = `apiVersion: v1
kind: Secret
metadata:
  name: secret-sa-sample
  annotations:
    kubernetes.io/service-account.name: "sa-name"
type: kubernetes.io/service-account-token
data:
  # 사용자는 불투명 시크릿을 사용하므로 추가적인 키 값 쌍을 포함할 수 있다.
  extra: YmFyCg==
`
	seedDockercfg = `apiVersion: v1
kind: Secret
metadata:
  name: secret-dockercfg
type: kubernetes.io/dockercfg
data:
  .dockercfg: |
        "<base64 encoded ~/.dockercfg file>"
`
	seedBasicAuth = `apiVersion: v1
kind: Secret
metadata:
  name: secret-basic-auth
type: kubernetes.io/basic-auth
stringData:
  username: admin      # kubernetes.io/basic-auth 에서 요구하는 필드
  password: t0p-Secret # kubernetes.io/basic-auth 에서 요구하는 필드
`
	seedSSH = `apiVersion: v1
kind: Secret
metadata:
  name: secret-ssh-auth
type: kubernetes.io/ssh-auth
data:
  # 본 예시를 위해 축약된 데이터임
  ssh-privatekey: |
          MIIEpQIBAAKCAQEAulqb/Y ...
`
	seedTLS = `apiVersion: v1
kind: Secret
metadata:
  name: secret-tls
type: kubernetes.io/tls
data:
  # 본 예시를 위해 축약된 데이터임
  tls.crt: |
        MIIC2DCCAcCgAwIBAgIBATANBgkqh ...
  tls.key: |
        MIIEpgIBAAKCAQEA7yn3bRHQ5FHMQ ...
`
	seedBootstrap = `apiVersion: v1
kind: Secret
metadata:
  name: bootstrap-token-5emitj
  namespace: kube-system
type: bootstrap.kubernetes.io/token
data:
  auth-extra-groups: c3lzdGVtOmJvb3RzdHJhcHBlcnM6a3ViZWFkbTpkZWZhdWx0LW5vZGUtdG9rZW4=
  expiration: MjAyMC0wOS0xM1QwNDozOToxMFo=
  token-id: NWVtaXRq
  token-secret: a3E0Z2lodnN6emduMXAwcg==
  usage-bootstrap-authentication: dHJ1ZQ==
  usage-bootstrap-signing: dHJ1ZQ==
`
	seedBootstrapString = `apiVersion: v1
kind: Secret
metadata:
  # 시크릿 이름이 어떻게 지정되었는지 확인
  name: bootstrap-token-5emitj
  # 부트스트랩 토큰 시크릿은 일반적으로 kube-system 네임스페이스에 포함
  namespace: kube-system
type: bootstrap.kubernetes.io/token
stringData:
  auth-extra-groups: "system:bootstrappers:kubeadm:default-node-token"
  expiration: "2020-09-13T04:39:10Z"
  # 이 토큰 ID는 이름에 사용됨
  token-id: "5emitj"
  token-secret: "kq4gihvszzgn1p0r"
  # 이 토큰은 인증을 위해서 사용될 수 있음
  usage-bootstrap-authentication: "true"
  # 또한 서명(signing)에도 사용될 수 있음
  usage-bootstrap-signing: "true"
`
	seedImmutable = `apiVersion: v1
kind: Secret
metadata:
  ...
data:
  ...
immutable: true
`
	seedPodList = `apiVersion: v1
kind: List
items:
- kind: Pod
  apiVersion: v1
  metadata:
    name: prod-db-client-pod
    labels:
      name: prod-db-client
  spec:
    volumes:
    - name: secret-volume
      secret:
        secretName: prod-db-secret
`
)

func parseOne(t *testing.T, doc string) Parsed {
	t.Helper()
	ps, err := ParseManifests([]byte(doc), "seed.yaml")
	if err != nil {
		t.Fatalf("ParseManifests: %v", err)
	}
	if len(ps) != 1 {
		t.Fatalf("got %d Secrets, want 1", len(ps))
	}
	return ps[0]
}

func TestSeedValidSecrets(t *testing.T) {
	tests := []struct {
		name, doc, ns, sname, typ string
		data                      map[string]string
	}{
		{"kubectl edit", seedEdited, "default", "mysecret", "Opaque",
			map[string]string{"username": "admin", "password": "1f2d1e2e67df"}},
		{"envFrom", seedEnv, "default", "mysecret", "Opaque",
			map[string]string{"USER_NAME": "admin", "PASSWORD": "1f2d1e2e67df"}},
		{"dotfile", seedDotfile, "default", "dotfile-secret", "Opaque",
			map[string]string{".secret-file": "value-2\r\n\r\n"}},
		{"service account", seedSA, "default", "secret-sa-sample", string(corev1.SecretTypeServiceAccountToken),
			map[string]string{"extra": "bar\n"}},
		{"basic-auth", seedBasicAuth, "default", "secret-basic-auth", string(corev1.SecretTypeBasicAuth),
			map[string]string{"username": "admin", "password": "t0p-Secret"}},
		{"bootstrap data", seedBootstrap, "kube-system", "bootstrap-token-5emitj", string(corev1.SecretTypeBootstrapToken), nil},
		{"bootstrap stringData", seedBootstrapString, "kube-system", "bootstrap-token-5emitj", string(corev1.SecretTypeBootstrapToken), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := parseOne(t, tc.doc)
			if p.Err != nil {
				t.Fatalf("unexpected error: %v", p.Err)
			}
			s := p.Secret
			if p.Namespace != tc.ns || p.Name != tc.sname || s.Namespace != tc.ns || s.Name != tc.sname || s.Type != tc.typ {
				t.Fatalf("got %s/%s type %q", s.Namespace, s.Name, s.Type)
			}
			if s.Origin != "seed.yaml" {
				t.Errorf("origin %q", s.Origin)
			}
			if tc.data != nil {
				if len(s.Data) != len(tc.data) {
					t.Errorf("got %d keys, want %d", len(s.Data), len(tc.data))
				}
				for k, v := range tc.data {
					if string(s.Data[k]) != v {
						t.Errorf("key %q = %q, want %q", k, s.Data[k], v)
					}
				}
			}
		})
	}
}

func TestSeedEditedMetadata(t *testing.T) {
	s := parseOne(t, seedEdited).Secret
	if s.ResourceVersion != "164619" {
		t.Errorf("resourceVersion %q", s.ResourceVersion)
	}
	if _, ok := s.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; !ok {
		t.Errorf("annotation lost: %v", s.Annotations)
	}
}

func TestSeedBootstrapForms(t *testing.T) {
	a, b := parseOne(t, seedBootstrap).Secret, parseOne(t, seedBootstrapString).Secret
	if !a.SameContent(b) {
		t.Errorf("data and stringData forms differ")
	}
	if string(a.Data["token-secret"]) != "kq4gihvszzgn1p0r" {
		t.Errorf("token-secret decoded wrong")
	}
}

// The page abbreviates some values ("MIIE... ..."); like the API server we
// reject them, naming the key.
func TestSeedPlaceholdersRejected(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"dockercfg", seedDockercfg, `data key ".dockercfg": illegal base64`},
		{"ssh", seedSSH, `data key "ssh-privatekey": illegal base64`},
		{"tls", seedTLS, `data key "tls.crt": illegal base64`},
		{"immutable", seedImmutable, `data: must be a map`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := parseOne(t, tc.doc)
			var ie *InvalidError
			if !errors.As(p.Err, &ie) {
				t.Fatalf("want *InvalidError, got %v", p.Err)
			}
			if !strings.Contains(p.Err.Error(), tc.want) || !strings.Contains(p.Err.Error(), "seed.yaml") {
				t.Errorf("error %q does not contain %q and origin", p.Err, tc.want)
			}
			if strings.Contains(p.Err.Error(), "MII") || strings.Contains(p.Err.Error(), "<base64") {
				t.Errorf("error %q leaks the value", p.Err)
			}
		})
	}
}

func TestSeedPodListHasNoSecret(t *testing.T) {
	ps, err := ParseManifests([]byte(seedPodList), "pod.yaml")
	if err != nil || len(ps) != 0 {
		t.Fatalf("got %v, %v; want no Secrets", ps, err)
	}
}
