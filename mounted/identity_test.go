package mounted_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	authv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/backend/kube"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/sanity/cluster"
)

// These tests check how volumes share reads by identity (package cache,
// "Identity") against a real
// kube-apiserver: Pods with their own bound tokens from the TokenRequest
// API, RBAC Roles granted and deleted, and watches counted by the
// apiserver itself (apiserver_longrunning_requests).

// podToken creates Pod pod of service account sa (both if missing) and
// returns a token bound to that Pod, as kubelet's tokenRequests does.
func (e *env) podToken(t *testing.T, sa, pod string, ttl time.Duration) backend.Token {
	t.Helper()
	ctx := context.Background()
	api := e.client.CoreV1()
	no := false
	if _, err := api.ServiceAccounts(e.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}, AutomountServiceAccountToken: &no}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	p, err := api.Pods(e.ns).Get(ctx, pod, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		p, err = api.Pods(e.ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod},
			Spec: corev1.PodSpec{ServiceAccountName: sa, AutomountServiceAccountToken: &no,
				Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	exp := int64(ttl.Seconds())
	tr, err := api.ServiceAccounts(e.ns).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return backend.Token{Value: tr.Status.Token, Expiry: tr.Status.ExpirationTimestamp.Time}
}

// grant lets sa get, list and watch these Secrets (Role "read-<sa>"),
// once the apiserver's authorizer says so.
func (e *env) grant(t *testing.T, sa string, secrets ...string) {
	t.Helper()
	ctx := context.Background()
	verbs := []string{"get", "list", "watch"}
	rules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: secrets, Verbs: verbs}}
	if _, err := e.client.RbacV1().Roles(e.ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-" + sa}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "read-" + sa},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "read-" + sa},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: e.ns}}}
	if _, err := e.client.RbacV1().RoleBindings(e.ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, name := range secrets {
		if err := e.c.WaitAllowed(ctx, e.ns, sa, authorizationv1.ResourceAttributes{Namespace: e.ns, Resource: "secrets", Name: name}, verbs...); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) as(sa string, tok backend.Token) backend.Identity {
	return backend.Identity{Namespace: e.ns, ServiceAccount: sa, Tokens: []backend.Token{tok}}
}

// secretWatches reads the apiserver's own count of open watches of
// Secrets: apiserver_longrunning_requests{resource="secrets",verb="WATCH"},
// less scope="cluster": the apiserver's own informer of all Secrets (it
// starts once service account tokens are in use) is not ours.
func (e *env) secretWatches(t *testing.T) int {
	t.Helper()
	raw, err := e.client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "apiserver_longrunning_requests{") || !strings.Contains(l, `resource="secrets"`) || !strings.Contains(l, `verb="WATCH"`) || strings.Contains(l, `scope="cluster"`) {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		n += int(v)
	}
	return n
}

// reads counts gets and lists of the Secret by service account sa.
func (e *env) reads(t *testing.T, sa, name string) int {
	t.Helper()
	n := 0
	for _, verb := range []string{"get", "list"} {
		c, err := e.c.CountAudit(cluster.AuditEvent{Verb: verb, User: "system:serviceaccount:" + e.ns + ":" + sa, Resource: "secrets", Namespace: e.ns, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		n += c
	}
	return n
}

func authFailures(outcome string) float64 {
	return testutil.ToFloat64(metrics.AuthFailures.WithLabelValues(outcome))
}

// allShow waits until every dir shows want in file k and returns how long
// that took.
func allShow(t *testing.T, dirs []string, k, want string) time.Duration {
	t.Helper()
	t0 := time.Now()
	for i, d := range dirs {
		eventually(t, fmt.Sprintf("volume %d to show %s", i, want), func() bool { return content(d, k) == want })
	}
	return time.Since(t0)
}

// TestKubeOneWatchPerServiceAccount: 20 Pods of one service account, each
// with its own bound token, publish one Secret within a second: one watch
// on the apiserver and at most 2 reads; a second account adds one watch;
// an update reaches all 21 volumes within 1 s.
func TestKubeOneWatchPerServiceAccount(t *testing.T) {
	e := setup(t)
	e.put(t, e.ns, "db", false, "k", "v1")
	e.grant(t, "web", "db")
	e.grant(t, "batch", "db")
	toks := make([]backend.Token, 20)
	for i := range toks {
		toks[i] = e.podToken(t, "web", fmt.Sprintf("web-%02d", i), time.Hour)
	}
	other := e.podToken(t, "batch", "batch-0", time.Hour)
	base := e.secretWatches(t)
	spec := projection.Spec{Namespace: e.ns, SecretName: "db"}

	dirs := make([]string, 21)
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range toks {
		wg.Go(func() {
			var err error
			if _, dirs[i], err = e.mount(t, spec, e.as("web", toks[i])); err != nil {
				t.Errorf("volume %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("20 publishes of one Secret by 20 Pods took %v", time.Since(t0).Round(time.Millisecond))
	for i, d := range dirs[:20] {
		if got := content(d, "k"); got != "v1" {
			t.Fatalf("volume %d shows %q", i, got)
		}
	}
	eventually(t, "the watch", func() bool { return e.secretWatches(t) == base+1 })
	time.Sleep(300 * time.Millisecond)
	if n := e.secretWatches(t) - base; n != 1 {
		t.Fatalf("20 volumes of one service account: %d watches on the apiserver, want 1", n)
	}
	if n := e.reads(t, "web", "db"); n > 2 {
		t.Errorf("20 publishes cost %d gets/lists, want at most 2", n)
	}

	var err error
	if _, dirs[20], err = e.mount(t, spec, e.as("batch", other)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second account's watch", func() bool { return e.secretWatches(t) == base+2 })
	time.Sleep(300 * time.Millisecond)
	if n := e.secretWatches(t) - base; n != 2 {
		t.Fatalf("two service accounts: %d watches, want 2", n)
	}
	t.Logf("apiserver: %d watches; gets+lists by web %d, by batch %d", e.secretWatches(t)-base, e.reads(t, "web", "db"), e.reads(t, "batch", "db"))

	e.put(t, e.ns, "db", false, "k", "v2")
	took := allShow(t, dirs, "k", "v2")
	t.Logf("update seen by all 21 volumes after %v", took.Round(time.Microsecond))
	if took > time.Second {
		t.Errorf("the update took %v to reach all 21 volumes, want ≤ 1s", took)
	}
}

// TestKubeRefusedTokenFallsBack: one of two Pods of a service account
// brings a token that is refused (issued for another account without the
// Role) and expires last, so it is the entry's first choice for the
// watch's next request (after its 1 s timeout here; the other Pod's token
// rotates meanwhile). The entry drops it, counts it, and goes on with the
// good one: both volumes follow an update within 1 s. A Pod of an account
// without access is refused with no data.
func TestKubeRefusedTokenFallsBack(t *testing.T) {
	e := setupWith(t, kube.Options{WatchTimeout: time.Second}, cache.Options{})
	e.put(t, e.ns, "db", false, "k", "v1")
	e.grant(t, "web", "db")
	spec := projection.Spec{Namespace: e.ns, SecretName: "db"}
	good := e.podToken(t, "web", "a", time.Hour)
	bad := e.podToken(t, "intruder", "b", 2*time.Hour)
	va, da, err := e.mount(t, spec, e.as("web", good))
	if err != nil {
		t.Fatal(err)
	}
	_, db, err := e.mount(t, spec, e.as("web", bad))
	if err != nil {
		t.Fatalf("a volume joining an entry with an accepted token: %v", err)
	}
	if content(db, "k") != "v1" {
		t.Fatalf("b shows %q", content(db, "k"))
	}
	before := authFailures("token")
	// kubelet rotates a's token at a republish.
	if err := va.Resubscribe(context.Background(), e.cache, e.as("web", e.podToken(t, "web", "a", time.Hour)), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refused token to be counted", func() bool { return authFailures("token") == before+1 })
	time.Sleep(1500 * time.Millisecond) // the watch with a's new token resumed once more
	e.put(t, e.ns, "db", false, "k", "v2")
	took := allShow(t, []string{da, db}, "k", "v2")
	t.Logf("after the fallback, the update reached both volumes in %v", took.Round(time.Microsecond))
	if took > time.Second {
		t.Errorf("update took %v, want ≤ 1s", took)
	}
	if n := e.secretWatches(t); n != 1 {
		t.Errorf("%d watches, want 1", n)
	}
	if refused, _ := e.c.CountAudit(cluster.AuditEvent{User: "system:serviceaccount:" + e.ns + ":intruder", Resource: "secrets"}); refused != 1 {
		t.Errorf("the refused token was sent %d times, want once", refused)
	}

	_, dn, err := e.mount(t, spec, e.as("nobody", e.podToken(t, "nobody", "n", time.Hour)))
	if !errors.Is(err, backend.ErrForbidden) || !strings.Contains(err.Error(), e.ns+"/db") || !strings.Contains(err.Error(), "service account "+e.ns+"/nobody") {
		t.Fatalf("publish by an account without access: %v; want ErrForbidden naming the Secret and the account", err)
	}
	if entries, _ := os.ReadDir(dn); len(entries) != 0 {
		t.Errorf("the refused volume's folder holds %d entries", len(entries))
	}
}

// TestKubeRoleDeletedKeepsLastGood: the Role of a service account with
// live volumes goes. Once the watch is refused (the next watch request,
// here after 1 s) the failure is counted and reported by each volume,
// the volumes keep their last good version, and a new volume of that
// account is refused with no data. A Role granted again lets the next
// publish in, and every volume of the entry follows again (and reports
// it).
func TestKubeRoleDeletedKeepsLastGood(t *testing.T) {
	e := setupWith(t, kube.Options{WatchTimeout: time.Second}, cache.Options{})
	e.put(t, e.ns, "db", false, "k", "v1")
	e.grant(t, "web", "db")
	spec := projection.Spec{Namespace: e.ns, SecretName: "db"}
	var dirs []string
	reps := []*reports{{}, {}}
	for i, pod := range []string{"a", "b"} {
		_, d, err := e.mountWith(t, mounted.Config{Spec: spec, Identity: e.as("web", e.podToken(t, "web", pod, time.Hour)), Report: reps[i]})
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	denied := authFailures("denied")
	ctx := context.Background()
	if err := e.client.RbacV1().Roles(e.ns).Delete(ctx, "read-web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refusal to be counted", func() bool { return authFailures("denied") == denied+1 })
	for i, r := range reps {
		eventually(t, "the refusal reported", func() bool {
			got := r.all()
			return len(got) > 0 && errors.Is(got[len(got)-1], backend.ErrForbidden)
		})
		if n := len(r.all()); n != 1 {
			t.Errorf("volume %d: %d reports of one refusal, want 1: %v", i, n, r.all())
		}
	}
	e.put(t, e.ns, "db", false, "k", "v2")
	time.Sleep(500 * time.Millisecond)
	for i, d := range dirs {
		if got := content(d, "k"); got != "v1" {
			t.Errorf("volume %d shows %q, want its last good v1", i, got)
		}
	}
	_, dn, err := e.mount(t, spec, e.as("web", e.podToken(t, "web", "c", time.Hour)))
	if !errors.Is(err, backend.ErrForbidden) || !strings.Contains(err.Error(), e.ns+"/db") || !strings.Contains(err.Error(), "web") {
		t.Fatalf("new volume of the refused account: %v; want ErrForbidden naming the Secret and account", err)
	}
	if entries, _ := os.ReadDir(dn); len(entries) != 0 {
		t.Errorf("the refused volume's folder holds %d entries", len(entries))
	}
	if got := authFailures("denied") - denied; got != 1 {
		t.Errorf("denied counted %v times, want once", got)
	}

	e.grant(t, "web", "db")
	_, d, err := e.mount(t, spec, e.as("web", e.podToken(t, "web", "d", time.Hour)))
	if err != nil {
		t.Fatalf("publish after the Role came back: %v", err)
	}
	allShow(t, append(dirs, d), "k", "v2")
	for _, r := range reps {
		eventually(t, "the recovery reported", func() bool { return r.last() == "followed" })
	}
}

// TestKubeIdleEntriesFreed: an entry whose volumes are gone keeps its
// watch for --cache-idle, then stops it and is freed (the live-entries
// gauge drops), pod-token entries as well (their open watch needs no new
// token until its next request).
func TestKubeIdleEntriesFreed(t *testing.T) {
	const idle = 2 * time.Second
	e := setupWith(t, kube.Options{}, cache.Options{Idle: idle})
	entries := func() int { return int(testutil.ToFloat64(metrics.CacheEntries)) }
	base := entries()
	var vols []*mounted.Volume
	for i := range 5 {
		name := fmt.Sprint("s", i)
		e.put(t, e.ns, name, false, "k", "v")
		v, _, err := e.mount(t, projection.Spec{Namespace: e.ns, SecretName: name}, backend.Identity{})
		if err != nil {
			t.Fatal(err)
		}
		vols = append(vols, v)
	}
	e.grant(t, "web", "s0")
	pv, _, err := e.mount(t, projection.Spec{Namespace: e.ns, SecretName: "s0"}, e.as("web", e.podToken(t, "web", "p", time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "6 watches", func() bool { return e.secretWatches(t) == 6 })
	if n := entries() - base; n != 6 {
		t.Fatalf("%d live entries, want 6", n)
	}
	t0 := time.Now()
	for _, v := range append(vols, pv) {
		v.Unmount()
		<-v.Done()
	}
	// Each entry's idle time starts when its last volume goes; under
	// load the unmounts take a while, so the check before --cache-idle
	// counts only while the first entry cannot have expired yet.
	n, live := e.secretWatches(t), entries()-base
	if since := time.Since(t0); since < idle && (n != 6 || live != 6) {
		t.Fatalf("%v after the first unmount (before --cache-idle): %d watches, %d entries; want 6 and 6", since, n, live)
	} else if since >= idle {
		t.Logf("the unmounts took %v, longer than --cache-idle: not checked before it", since)
	}
	eventually(t, "the idle entries to be freed", func() bool { return e.secretWatches(t) == 0 && entries() == base })
	t.Logf("idle entries freed %v after their volumes went (--cache-idle %v)", time.Since(t0).Round(time.Millisecond), idle)
}

// A volume of several sources resubscribed with a token that cannot read
// one of them keeps every old subscription (all or nothing: it still
// follows both as before), and the failure is reported naming that source.
func TestKubeSourcesResubscribeAllOrNothing(t *testing.T) {
	e := setup(t)
	e.put(t, e.ns, "s1", false, "a", "1")
	e.put(t, e.ns, "s2", false, "b", "1")
	e.grant(t, "web", "s1", "s2")
	e.grant(t, "other", "s1")
	var rep reports
	srcs := []mounted.Source{{Spec: projection.Spec{Namespace: e.ns, SecretName: "s1"}}, {Spec: projection.Spec{Namespace: e.ns, SecretName: "s2"}}}
	v, dir, err := e.mountWith(t, mounted.Config{Sources: srcs, Identity: e.as("web", e.podToken(t, "web", "p", time.Hour)), Report: &rep})
	if err != nil {
		t.Fatal(err)
	}
	err = v.Resubscribe(context.Background(), e.cache, e.as("other", e.podToken(t, "other", "q", time.Hour)), nil)
	var pe *projection.PartError
	if got := rep.all(); err == nil || len(got) == 0 || !errors.As(got[len(got)-1], &pe) || pe.Part != `secret "app/s2"` {
		t.Fatalf("resubscribe: %v; reports %v; want s2 refused and reported", err, got)
	}
	e.put(t, e.ns, "s1", false, "a", "2")
	e.put(t, e.ns, "s2", false, "b", "2")
	eventually(t, "both sources followed as before", func() bool { return content(dir, "a") == "2" && content(dir, "b") == "2" })
}
