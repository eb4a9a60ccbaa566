package mounted_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/backend/kube"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/sanity/cluster"
	"github.com/secretfs/secretfs/sanity/needroot"
)

// These tests run the whole path — kube-apiserver, the kube backend, the
// shared cache, projection and real FUSE mounts — against a real control
// plane (etcd + kube-apiserver v1.37.2 from sanity/cluster).

type env struct {
	c      *cluster.Cluster
	client kubernetes.Interface
	cache  *cache.Cache
	kb     *kube.Backend
	ns     string
}

func setup(t *testing.T) *env { return setupWith(t, kube.Options{}, cache.Options{}) }

func setupWith(t *testing.T, ko kube.Options, co cache.Options) *env {
	t.Helper()
	needroot.FUSE(t, "volumes mount FUSE")
	c := cluster.Start(t)
	b, err := kube.New(c.RestConfig(), ko)
	if err != nil {
		t.Fatal(err)
	}
	ch := cache.New(b, co)
	t.Cleanup(ch.Close)
	e := &env{c: c, client: c.Client(), cache: ch, kb: b, ns: "app"}
	e.namespace(t, e.ns)
	return e
}

func (e *env) namespace(t *testing.T, ns string) {
	t.Helper()
	_, err := e.client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) put(t *testing.T, ns, name string, immutable bool, kv ...string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: map[string]string{}}
	for i := 0; i < len(kv); i += 2 {
		s.StringData[kv[i]] = kv[i+1]
	}
	if immutable {
		s.Immutable = &immutable
	}
	ctx := context.Background()
	_, err := e.client.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
	if err != nil {
		_, err = e.client.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) del(t *testing.T, ns, name string) {
	t.Helper()
	if err := e.client.CoreV1().Secrets(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) mount(t *testing.T, spec projection.Spec, id backend.Identity) (*mounted.Volume, string, error) {
	t.Helper()
	return e.mountWith(t, mounted.Config{Spec: spec, Identity: id})
}

func (e *env) mountWith(t *testing.T, cfg mounted.Config) (*mounted.Volume, string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "m")
	os.Mkdir(dir, 0o755)
	v, err := mounted.Mount(context.Background(), e.cache, dir, cfg)
	if err == nil {
		t.Cleanup(func() { v.Unmount(); <-v.Done() })
	}
	return v, dir, err
}

func content(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestKubeMountLifecycle(t *testing.T) {
	e := setup(t)
	e.put(t, e.ns, "db", false, "user", "u1", "pass", "p1")
	_, dir, err := e.mount(t, projection.Spec{Namespace: e.ns, SecretName: "db"}, backend.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	if got := content(dir, "pass"); got != "p1" {
		t.Fatalf("pass = %q", got)
	}
	e.put(t, e.ns, "db", false, "user", "u2", "token", "t2")
	eventually(t, "the update", func() bool { return content(dir, "user") == "u2" && content(dir, "token") == "t2" })
	if _, err := os.Stat(filepath.Join(dir, "pass")); !os.IsNotExist(err) {
		t.Errorf("removed key still shows: %v", err)
	}
	// Deleted: a non-optional volume keeps its last good version.
	e.del(t, e.ns, "db")
	time.Sleep(200 * time.Millisecond)
	if got := content(dir, "user"); got != "u2" {
		t.Errorf("after delete user = %q, want the last good u2", got)
	}
	e.put(t, e.ns, "db", false, "user", "u3")
	eventually(t, "the recreated Secret", func() bool { return content(dir, "user") == "u3" })

	// Optional: empty while missing, fills in, empties on delete.
	_, odir, err := e.mount(t, projection.Spec{Namespace: e.ns, SecretName: "later", Optional: true}, backend.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, e.ns, "later", false, "k", "v")
	eventually(t, "the optional Secret to appear", func() bool { return content(odir, "k") == "v" })
	e.del(t, e.ns, "later")
	eventually(t, "the optional volume to empty", func() bool {
		_, err := os.Stat(filepath.Join(odir, "k"))
		return os.IsNotExist(err)
	})

	// Missing and not optional: the mount fails naming namespace/name.
	_, _, err = e.mount(t, projection.Spec{Namespace: e.ns, SecretName: "nope"}, backend.Identity{})
	var nf *projection.NotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), e.ns+"/nope") {
		t.Errorf("mount of a missing Secret: %v, want NotFoundError naming %s/nope", err, e.ns)
	}
}

func TestKubeNamespacesStayApart(t *testing.T) {
	e := setup(t)
	e.namespace(t, "other")
	e.put(t, e.ns, "same", false, "k", "in-app")
	e.put(t, "other", "same", false, "k", "in-other")
	_, a, err := e.mount(t, projection.Spec{Namespace: e.ns, SecretName: "same"}, backend.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := e.mount(t, projection.Spec{Namespace: "other", SecretName: "same"}, backend.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, "other", "same", false, "k", "in-other-2")
	eventually(t, "other's update", func() bool { return content(b, "k") == "in-other-2" })
	if got := content(a, "k"); got != "in-app" {
		t.Errorf("app's volume shows %q after other's update", got)
	}
}

func TestKubeImmutableReadOnce(t *testing.T) {
	e := setup(t)
	e.put(t, e.ns, "frozen", true, "k", "v")
	for range 3 {
		if _, dir, err := e.mount(t, projection.Spec{Namespace: e.ns, SecretName: "frozen"}, backend.Identity{}); err != nil || content(dir, "k") != "v" {
			t.Fatalf("mount: %v", err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	watches, _ := e.c.CountAudit(cluster.AuditEvent{Verb: "watch", Resource: "secrets", Namespace: e.ns})
	gets, _ := e.c.CountAudit(cluster.AuditEvent{Verb: "get", Resource: "secrets", Namespace: e.ns, Name: "frozen"})
	if watches != 0 || gets != 1 {
		t.Errorf("3 mounts of an immutable Secret: %d gets, %d watches; want 1 get, 0 watches", gets, watches)
	}
}

func TestKubeRBACDenied(t *testing.T) {
	e := setup(t)
	e.put(t, e.ns, "private", false, "k", "v")
	ctx := context.Background()
	token, err := e.c.TokenFor(ctx, e.ns, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	id := backend.Identity{Namespace: e.ns, ServiceAccount: "nobody", Tokens: []backend.Token{{Value: token}}}
	_, _, err = e.mount(t, projection.Spec{Namespace: e.ns, SecretName: "private"}, id)
	if !errors.Is(err, backend.ErrForbidden) || !strings.Contains(err.Error(), e.ns+"/private") || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("mount with a token lacking RBAC: %v; want ErrForbidden naming the Secret and the account", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Error("the error carries the token")
	}
	// Granted get/watch on that one Secret: the same token mounts it.
	rules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"private"}, Verbs: []string{"get", "list", "watch"}}}
	if _, err := e.client.RbacV1().Roles(e.ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read"}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "read"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "read"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "nobody", Namespace: e.ns}}}
	if _, err := e.client.RbacV1().RoleBindings(e.ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var dir string
	eventually(t, "RBAC to allow the read", func() bool {
		_, dir, err = e.mount(t, projection.Spec{Namespace: e.ns, SecretName: "private"}, id)
		return err == nil
	})
	if got := content(dir, "k"); got != "v" {
		t.Errorf("k = %q", got)
	}
}

func TestKubeWatchSurvivesAPIServerRestart(t *testing.T) {
	e := setup(t)
	e.put(t, e.ns, "s", false, "k", "1")
	_, dir, err := e.mount(t, projection.Spec{Namespace: e.ns, SecretName: "s"}, backend.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	e.c.KillAPIServer()
	time.Sleep(500 * time.Millisecond)
	if got := content(dir, "k"); got != "1" {
		t.Errorf("while the apiserver is down k = %q, want the last good 1", got)
	}
	if err := e.c.StartAPIServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.put(t, e.ns, "s", false, "k", "2")
	eventually(t, "an update after the restart", func() bool { return content(dir, "k") == "2" })
}

// TestKubeOneWatchPerSecret: every mount of one Secret shares one watch;
// 100 Secrets cost one list and one watch each. Counted at the apiserver.
func TestKubeOneWatchPerSecret(t *testing.T) {
	e := setup(t)
	e.namespace(t, "many")
	e.put(t, e.ns, "shared", false, "k", "v")
	for i := range 100 {
		if _, _, err := e.mount(t, projection.Spec{Namespace: e.ns, SecretName: "shared"}, backend.Identity{}); err != nil {
			t.Fatal(err)
		}
		e.put(t, "many", fmt.Sprintf("s%03d", i), false, "k", "v")
	}
	for i := range 100 {
		if _, _, err := e.mount(t, projection.Spec{Namespace: "many", SecretName: fmt.Sprintf("s%03d", i)}, backend.Identity{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	count := func(ns, verb string) int {
		n, err := e.c.CountAudit(cluster.AuditEvent{Verb: verb, Resource: "secrets", Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	oneW, oneL, oneG := count(e.ns, "watch"), count(e.ns, "list"), count(e.ns, "get")
	manyW, manyL, manyG := count("many", "watch"), count("many", "list"), count("many", "get")
	t.Logf("100 mounts of one Secret: %d watch, %d list, %d get; 100 Secrets mounted once each: %d watch, %d list, %d get", oneW, oneL, oneG, manyW, manyL, manyG)
	if oneW != 1 {
		t.Errorf("100 mounts of one Secret opened %d watches, want 1", oneW)
	}
	if manyW != 100 {
		t.Errorf("100 Secrets opened %d watches, want 100", manyW)
	}
}
