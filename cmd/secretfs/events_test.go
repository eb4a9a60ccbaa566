//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	authv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/secretfs/secretfs/sanity/cluster"
)

// TestCSIEventsKube: `secretfs csi --source kube` as the chart runs it
// (the plugin's identity from deploy/rbac.yaml, the Secret read with the
// Pod's own token). The Secret under a mounted non-optional volume is
// deleted: the Pod gets a Warning naming the volume and the Secret; the
// Secret comes back: a Normal event.
func TestCSIEventsKube(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	c := cluster.Start(t)
	ctx := context.Background()
	api := c.Client()
	work := t.TempDir()
	kubeconfig := filepath.Join(work, "kubeconfig")
	// The plugin's identity as the chart makes it.
	tok, err := c.ApplyRBAC(ctx, "../../deploy/rbac.yaml", authorizationv1.ResourceAttributes{Namespace: "app", Resource: "events"}, "create", "patch")
	must(t, err)
	must(t, c.WriteKubeconfig(kubeconfig, tok))
	po, tokens := appPod(t, c, api)

	root, sock := filepath.Join(work, "kubelet"), filepath.Join(work, "csi.sock")
	cmd := exec.Command(bin, "csi", "--endpoint", "unix://"+sock, "--node-id", "n1", "--source", "kube", "--mount-root", root)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	must(t, cmd.Start())
	target := filepath.Join(root, "pods", string(po.UID), "volumes", "kubernetes.io~csi", "creds", "mount")
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		// Left mounted for a keeper that is not there; ours to clear,
		// in this namespace, before the temp folder goes.
		syscall.Unmount(target, syscall.MNT_DETACH)
		if t.Failed() {
			t.Logf("plugin log:\n%s", logs.String())
		}
	})
	waitFor(t, "csi socket", func() bool { _, err := os.Stat(sock); return err == nil })
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer conn.Close()
	must(t, os.MkdirAll(filepath.Dir(target), 0o750))
	sum := sha256.Sum256([]byte(string(po.UID) + "creds"))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = csi.NewNodeClient(conn).NodePublishVolume(pctx, &csi.NodePublishVolumeRequest{
		VolumeId:   "csi-" + hex.EncodeToString(sum[:]),
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		Readonly: true,
		VolumeContext: map[string]string{"secretName": "db",
			"csi.storage.k8s.io/pod.name": po.Name, "csi.storage.k8s.io/pod.namespace": po.Namespace,
			"csi.storage.k8s.io/pod.uid": string(po.UID), "csi.storage.k8s.io/serviceAccount.name": "web",
			"csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/serviceAccount.tokens": tokens},
	}, grpc.WaitForReady(true)) // the socket file exists a moment before it listens
	must(t, err)
	if got := readFile(t, filepath.Join(target, "password")); got != "v1" {
		t.Fatalf("password = %q", got)
	}

	must(t, api.CoreV1().Secrets("app").Delete(ctx, "db", metav1.DeleteOptions{}))
	w := waitEvent(t, api, po, corev1.EventTypeWarning)
	if w.Reason != "SecretRefreshFailed" || !strings.Contains(w.Message, "volume creds: Secret app/db was deleted") {
		t.Errorf("Warning %s %q", w.Reason, w.Message)
	}
	if got := readFile(t, filepath.Join(target, "password")); got != "v1" {
		t.Errorf("after the deletion password = %q, want the last good v1", got)
	}
	createSecret(t, api, "v2")
	n := waitEvent(t, api, po, corev1.EventTypeNormal)
	if n.Reason != "SecretRefreshRecovered" || n.Message != "volume creds: follows Secret app/db again" {
		t.Errorf("Normal event %s %q", n.Reason, n.Message)
	}
}

// appPod makes namespace app with Secret db, a service account web that
// may read it (and only it) and a Pod of web; it returns the Pod and its
// serviceAccount.tokens as kubelet sends them.
func appPod(t *testing.T, c *cluster.Cluster, api kubernetes.Interface) (*corev1.Pod, string) {
	t.Helper()
	ctx := context.Background()
	_, err := api.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{})
	must(t, err)
	createSecret(t, api, "v1")
	no := false
	_, err = api.CoreV1().ServiceAccounts("app").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}, AutomountServiceAccountToken: &no}, metav1.CreateOptions{})
	must(t, err)
	_, err = api.RbacV1().Roles("app").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"db"}, Verbs: []string{"get", "list", "watch"}}}}, metav1.CreateOptions{})
	must(t, err)
	_, err = api.RbacV1().RoleBindings("app").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "web"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "web", Namespace: "app"}}}, metav1.CreateOptions{})
	must(t, err)
	must(t, c.WaitAllowed(ctx, "app", "web", authorizationv1.ResourceAttributes{Namespace: "app", Resource: "secrets", Name: "db"}, "get", "list", "watch"))
	po, err := api.CoreV1().Pods("app").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0"},
		Spec: corev1.PodSpec{ServiceAccountName: "web", AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}, metav1.CreateOptions{})
	must(t, err)
	exp := int64(3600)
	tr, err := api.CoreV1().ServiceAccounts("app").CreateToken(ctx, "web", &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: &exp, BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: po.Name, UID: po.UID},
	}}, metav1.CreateOptions{})
	must(t, err)
	js, err := json.Marshal(map[string]any{"": map[string]string{"token": tr.Status.Token, "expirationTimestamp": tr.Status.ExpirationTimestamp.UTC().Format(time.RFC3339)}})
	must(t, err)
	return po, string(js)
}

func createSecret(t *testing.T, api kubernetes.Interface, password string) {
	t.Helper()
	_, err := api.CoreV1().Secrets("app").Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		StringData: map[string]string{"password": password}}, metav1.CreateOptions{})
	must(t, err)
}

// waitEvent waits for an event of type typ on the Pod.
func waitEvent(t *testing.T, api kubernetes.Interface, po *corev1.Pod, typ string) corev1.Event {
	t.Helper()
	var found corev1.Event
	waitFor(t, typ+" event on the Pod", func() bool {
		l, err := api.CoreV1().Events(po.Namespace).List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.uid=" + string(po.UID) + ",type=" + typ})
		if err != nil || len(l.Items) == 0 {
			return false
		}
		found = l.Items[0]
		return true
	})
	return found
}

// A file source in a Pod without a service account token (the chart's
// file mode): kubelet still sets KUBERNETES_SERVICE_HOST, and the plugin
// must serve without events, not fail to start.
func TestEventsFileSourceWithoutToken(t *testing.T) {
	if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token"); err == nil {
		t.Skip("this machine has an in-cluster token")
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	rec, err := openEvents("file:"+t.TempDir(), "node-1")
	if err != nil || rec != nil {
		t.Fatalf("openEvents = %v, %v; want no recorder and no error", rec, err)
	}
}
