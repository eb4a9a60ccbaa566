package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfs/secretfs/sanity/node"
)

// The example Pods of the seed (Kubernetes "Secrets" concept page), each
// with a secretfs CSI inline volume beside the original secret volume.
func TestSeedPods(t *testing.T) {
	mysecret := map[string]string{"username": "admin", "password": "1f2d1e2e67df"}
	seed := func(name, secret string, data map[string]string, mp string, src corev1.SecretVolumeSource, extra string, want ...string) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t, "seed")
			createSecret(t, ns, secret, data)
			src.SecretName = secret
			log, _ := runPair(t, podSpec{ns: ns, name: strings.ToLower(strings.ReplaceAll(name, " ", "-")), script: inventory + extra, args: []string{mp},
				vols: []vol{{"secret-volume", mp, src}}})
			wantLines(t, log, want...)
		})
	}
	seed("mysecret", "mysecret", mysecret, "/etc/foo", corev1.SecretVolumeSource{Optional: ptr(false)}, "",
		"/etc/foo/username: 644 0 root [admin]", "/etc/foo/password: 644 0 root [1f2d1e2e67df]",
		"LINK ./..data -> ..TS [lrwxrwxrwx 777 root 0] resolves [drwxr-xr-x 755 root 0]")
	seed("items", "mysecret", mysecret, "/etc/foo",
		corev1.SecretVolumeSource{Items: []corev1.KeyToPath{{Key: "username", Path: "my-group/my-username"}}}, "",
		"LINK ./my-group -> ..data/my-group [lrwxrwxrwx 777 root 0] resolves [drwxr-xr-x 755 root 0]",
		"FILE ./..TS/my-group/my-username [-rw-r--r-- 644 root 0] YWRtaW4=")
	seed("defaultMode 0400", "mysecret", mysecret, "/etc/foo", corev1.SecretVolumeSource{DefaultMode: ptr[int32](0o400)}, "",
		"/etc/foo/username: 400 0 root [admin]", "/etc/foo/password: 400 0 root [1f2d1e2e67df]")
	seed("dotfile", "dotfile-secret", map[string]string{".secret-file": "value-2\r\n\r\n"}, "/etc/secret-volume",
		corev1.SecretVolumeSource{}, "\necho '--- ls -l (the seed pod command)'\nls -l /etc/secret-volume | awk 'NR>1 {print $1, $NF}'\n",
		"LINK ./.secret-file -> ..data/.secret-file [lrwxrwxrwx 777 root 0] resolves [-rw-r--r-- 644 root 0]",
		"FILE ./..TS/.secret-file [-rw-r--r-- 644 root 0] dmFsdWUtMg0KDQo=")
	seed("ssh-key", "ssh-key-secret", map[string]string{
		"ssh-privatekey": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
		"ssh-publickey":  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2e2e user@host\n"}, "/etc/secret-volume",
		corev1.SecretVolumeSource{}, "",
		"/etc/secret-volume/ssh-publickey: 644 0 root [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2e2e user@host]")
	seed("prod db", "prod-db-secret", map[string]string{"username": "produser", "password": "Y4nys7f11"}, "/etc/secret-volume",
		corev1.SecretVolumeSource{}, "",
		"/etc/secret-volume/username: 644 0 root [produser]", "/etc/secret-volume/password: 644 0 root [Y4nys7f11]")
	seed("test db", "test-db-secret", map[string]string{"username": "testuser", "password": "iluvtests"}, "/etc/secret-volume",
		corev1.SecretVolumeSource{}, "",
		"/etc/secret-volume/username: 644 0 root [testuser]", "/etc/secret-volume/password: 644 0 root [iluvtests]")
}

// A Pod whose ServiceAccount may not read the Secret gets no volume: with
// tokenRequests the plugin reads with the Pod's own token, so RBAC decides.
// (kubelet's own volume reads with the node's identity and would start:
// this is secretfs's stricter rule, not a difference to hide.)
func TestNoRBACRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t, "rbac")
	if err := theNode.EnsureServiceAccount(ctx, ns, "no-rbac"); err != nil {
		t.Fatal(err)
	}
	createSecret(t, ns, "mysecret", map[string]string{"username": "admin"})
	p := podSpec{ns: ns, name: "reader", sa: "no-rbac", script: inventory, args: []string{"/etc/foo"},
		vols: []vol{{"foo", "/etc/foo", corev1.SecretVolumeSource{SecretName: "mysecret"}}}}
	cp := createPod(t, makePod(p, kindCSI))
	e := waitEvent(t, cp, time.Minute, "mysecret")
	t.Logf("event: %s %s: %s", e.Type, e.Reason, e.Message)
	if e.Reason != "FailedMount" {
		t.Errorf("reason %q, want FailedMount", e.Reason)
	}
	low := strings.ToLower(e.Message)
	if !strings.Contains(low, "forbidden") && !strings.Contains(low, "permissiondenied") && !strings.Contains(low, "permission denied") {
		t.Errorf("event does not say the read was forbidden: %s", e.Message)
	}
	time.Sleep(2 * time.Second)
	got, err := kc.CoreV1().Pods(ns).Get(ctx, cp.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodPending {
		t.Errorf("pod is %s, want Pending", got.Status.Phase)
	}
	// Control: the same Pod with the granted default ServiceAccount runs.
	p.sa, p.name = "", "reader-granted"
	ok := createPod(t, makePod(p, kindCSI))
	waitPod(t, ok, 2*time.Minute, corev1.PodSucceeded)
}

// A Pod cannot read another namespace's Secret through secretNamespace.
func TestOtherNamespaceRefused(t *testing.T) {
	t.Parallel()
	ns, other := newNamespace(t, "xns"), newNamespace(t, "xns-other")
	createSecret(t, other, "mysecret", map[string]string{"username": "admin"})
	p := podSpec{ns: ns, name: "reader", script: inventory, args: []string{"/etc/foo"}}
	pod := makePod(p, kindCSI)
	ro := true
	pod.Spec.Volumes = []corev1.Volume{{Name: "foo", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
		Driver: node.DriverName, ReadOnly: &ro,
		VolumeAttributes: map[string]string{"secretName": "mysecret", "secretNamespace": other}}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "foo", MountPath: "/etc/foo", ReadOnly: true}}
	cp := createPod(t, pod)
	e := waitEvent(t, cp, time.Minute, "secretNamespace")
	t.Logf("event: %s %s: %s", e.Type, e.Reason, e.Message)
	if !strings.Contains(e.Message, "InvalidArgument") {
		t.Errorf("want InvalidArgument: %s", e.Message)
	}
}
