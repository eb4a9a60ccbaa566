package csi

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/secretfs/secretfs/backend/kube"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/sanity/cluster"
)

// TestPodTokensShareByServiceAccount: the kube source with pod tokens,
// over gRPC as kubelet calls it. Pods of one service account share one
// watch whatever their tokens; a republish with a rotated token keeps
// the volume; a Pod whose account may not read the Secret gets
// PermissionDenied naming the Secret and the account, and no files.
func TestPodTokensShareByServiceAccount(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	const ns = "app"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": "v1"}}
	c, api, kc := kubeSource(t, ns, secret)
	grantRead(t, api, ns, "web", "db")
	p := startPlugin(t, func(cfg *Config, _ *ServerOptions) { cfg.Cache, cfg.PodTokens = kc, true })

	attrs := map[string]string{"secretName": "db"}
	var targets []string
	var first *podReq
	for _, name := range []string{"web-0", "web-1", "web-2", "web-3", "web-4"} {
		r := newPodReq(t, p, api, ns, "web", name, attrs)
		p.mustPublish(r.req)
		wantFiles(t, r.target, map[string]string{"password": "v1"})
		targets = append(targets, r.target)
		if first == nil {
			first = r
		}
	}
	// kubelet republishes web-0 with a rotated token.
	first.rotate(t)
	p.mustPublish(first.req)

	denied := newPodReq(t, p, api, ns, "nobody", "n-0", attrs)
	err := p.publish(denied.req)
	wantCode(t, err, codes.PermissionDenied)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, ns+"/db") || !strings.Contains(msg, "service account "+ns+"/nobody") {
		t.Errorf("PermissionDenied %q: want the Secret and the service account named", msg)
	}
	if _, err := os.Stat(denied.target); !os.IsNotExist(err) {
		t.Errorf("the refused target is left: %v", err)
	}

	secret.StringData["password"] = "v2"
	if _, err := api.CoreV1().Secrets(ns).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		waitFor(t, "the update", func() bool { return files(t, tg)["password"] == "v2" })
	}
	watches, err := c.CountAudit(cluster.AuditEvent{Verb: "watch", User: "system:serviceaccount:" + ns + ":web", Resource: "secrets"})
	must(t, err)
	if watches != 1 {
		t.Errorf("5 Pods of one service account and a rotation: %d watches, want 1", watches)
	}
}

// kubeSource starts a control plane with namespace ns holding secret and
// returns it with a cache over the kube source (an admin's identity: the
// plugin's own; volumes with pod tokens read with theirs).
func kubeSource(t *testing.T, ns string, secret *corev1.Secret) (*cluster.Cluster, kubernetes.Interface, *cache.Cache) {
	t.Helper()
	c := cluster.Start(t)
	ctx := context.Background()
	api := c.Client()
	_, err := api.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(t, err)
	_, err = api.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{})
	must(t, err)
	b, err := kube.New(c.RestConfig(), kube.Options{})
	must(t, err)
	kc := cache.New(b, cache.Options{})
	t.Cleanup(kc.Close)
	return c, api, kc
}

// podReq is one Pod's publish request with its bound token.
type podReq struct {
	api    kubernetes.Interface
	ns, sa string
	pod    *corev1.Pod
	req    *csi.NodePublishVolumeRequest
	target string
}

func newPodReq(t *testing.T, p *plugin, api kubernetes.Interface, ns, sa, name string, attrs map[string]string) *podReq {
	t.Helper()
	ctx := context.Background()
	no := false
	api.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}, AutomountServiceAccountToken: &no}, metav1.CreateOptions{})
	po, err := api.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{ServiceAccountName: sa, AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}, metav1.CreateOptions{})
	must(t, err)
	r := &podReq{api: api, ns: ns, sa: sa, pod: po}
	r.req, r.target = p.inline(pod{ns: ns, name: name, uid: string(po.UID), sa: sa, tokens: r.tokens(t)}, "v", attrs, nil)
	return r
}

// tokens is serviceAccount.tokens as kubelet fills it: a fresh token bound
// to the Pod, for the API server's audience.
func (r *podReq) tokens(t *testing.T) string {
	t.Helper()
	exp := int64(3600)
	tr, err := r.api.CoreV1().ServiceAccounts(r.ns).CreateToken(context.Background(), r.sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: &exp, BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: r.pod.Name, UID: r.pod.UID},
	}}, metav1.CreateOptions{})
	must(t, err)
	js, err := json.Marshal(map[string]any{"": map[string]string{"token": tr.Status.Token, "expirationTimestamp": tr.Status.ExpirationTimestamp.UTC().Format(time.RFC3339)}})
	must(t, err)
	return string(js)
}

func (r *podReq) rotate(t *testing.T) { r.req.VolumeContext[tokensKey] = r.tokens(t) }

func grantRead(t *testing.T, api kubernetes.Interface, ns, sa, name string) {
	t.Helper()
	ctx := context.Background()
	rules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{name}, Verbs: []string{"get", "list", "watch"}}}
	_, err := api.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: sa}, Rules: rules}, metav1.CreateOptions{})
	must(t, err)
	_, err = api.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}}, metav1.CreateOptions{})
	must(t, err)
}
