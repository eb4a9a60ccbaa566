package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
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
)

// BenchmarkIdentityRequests: what 100 publishes cost the kube-apiserver
// when each comes from its own Pod with its own bound token (kubelet's
// tokenRequests), across 10 Secrets and 10 service accounts (10 Pods per
// account, each account allowed to read all 10 Secrets). Counted from the
// apiserver's audit log; the 100 volumes are published 25 at a time, as
// one rollout would. Layouts:
//
//	deployments  Pod j of account i mounts Secret i (each app's replicas
//	             share its Secret): 10 (Secret, account) entries
//	spread       Pod j of account i mounts Secret j: 100 entries, the worst
//	             case for sharing
//	per-token    as deployments, but kubelet's serviceAccount.name left out,
//	             so nothing tells the cache which tokens belong together:
//	             every token its own entry, as the cache keyed entries
//	             before (the baseline)
//	rotation     deployments, then every volume republished with a fresh
//	             token (kubelet rotating them): what the 100 republishes add
//
// Reported per 100 publishes: watches, gets, lists (each watch also costs
// the list it starts from).
func BenchmarkIdentityRequests(b *testing.B) {
	needRoot(b)
	c := cluster.Start(b)
	w := newIdentityWorld(b, c)
	for _, l := range []struct {
		name   string
		secret func(sa, pod int) int
		noSA   bool
		rotate bool
	}{
		{name: "deployments", secret: func(sa, _ int) int { return sa }},
		{name: "spread", secret: func(_, pod int) int { return pod }},
		{name: "per-token", secret: func(sa, _ int) int { return sa }, noSA: true},
		{name: "rotation", secret: func(sa, _ int) int { return sa }, rotate: true},
	} {
		b.Run(l.name, func(b *testing.B) {
			for range b.N {
				got := w.round(b, l.secret, l.noSA, l.rotate)
				for verb, n := range got {
					b.ReportMetric(float64(n), verb+"/100-publishes")
				}
			}
		})
	}
}

const identityNS = "bench-identity"

type identityWorld struct {
	c   *cluster.Cluster
	api kubernetes.Interface
	ctx context.Context
	n   int // rounds run, for fresh user agents
}

// newIdentityWorld makes the namespace, 10 Secrets, 10 service accounts
// with a Role on all of them, and 100 Pods (10 per account).
func newIdentityWorld(b *testing.B, c *cluster.Cluster) *identityWorld {
	w := &identityWorld{c: c, api: c.Client(), ctx: context.Background()}
	must := func(_ any, err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(w.api.CoreV1().Namespaces().Create(w.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: identityNS}}, metav1.CreateOptions{}))
	var names []string
	for i := range 10 {
		names = append(names, fmt.Sprint("s", i))
		must(w.api.CoreV1().Secrets(identityNS).Create(w.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: names[i]},
			Data: map[string][]byte{"k": value(i, 64)}}, metav1.CreateOptions{}))
	}
	no := false
	for i := range 10 {
		sa := fmt.Sprint("sa", i)
		must(w.api.CoreV1().ServiceAccounts(identityNS).Create(w.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}, AutomountServiceAccountToken: &no}, metav1.CreateOptions{}))
		must(w.api.RbacV1().Roles(identityNS).Create(w.ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: sa},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: names, Verbs: []string{"get", "list", "watch"}}}}, metav1.CreateOptions{}))
		must(w.api.RbacV1().RoleBindings(identityNS).Create(w.ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: sa},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: identityNS}}}, metav1.CreateOptions{}))
		for j := range 10 {
			must(w.api.CoreV1().Pods(identityNS).Create(w.ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: podName(i, j)},
				Spec: corev1.PodSpec{ServiceAccountName: sa, AutomountServiceAccountToken: &no,
					Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}, metav1.CreateOptions{}))
		}
	}
	return w
}

func podName(sa, pod int) string { return fmt.Sprintf("sa%d-pod%d", sa, pod) }

// token is a fresh token bound to the Pod, as kubelet requests it.
func (w *identityWorld) token(b *testing.B, sa, pod int) backend.Token {
	p, err := w.api.CoreV1().Pods(identityNS).Get(w.ctx, podName(sa, pod), metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	exp := int64(3600)
	tr, err := w.api.CoreV1().ServiceAccounts(identityNS).CreateToken(w.ctx, fmt.Sprint("sa", sa), &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: &exp, BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return backend.Token{Value: tr.Status.Token, Expiry: tr.Status.ExpirationTimestamp.Time}
}

// round publishes the 100 volumes through a fresh backend and cache
// (their own user agent, to count their requests alone), optionally
// republishes them with fresh tokens, and returns the requests counted.
func (w *identityWorld) round(b *testing.B, secret func(sa, pod int) int, noSA, rotate bool) map[string]int {
	b.StopTimer()
	w.n++
	cfg := w.c.RestConfig()
	cfg.UserAgent = fmt.Sprintf("secretfs-identity-%d", w.n)
	be, err := kube.New(cfg, kube.Options{Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ch := cache.New(be, cache.Options{Logger: quiet})
	defer ch.Close()
	type pub struct {
		sa, pod int
		tok     backend.Token
		vol     *mounted.Volume
	}
	var pubs []*pub
	for i := range 10 {
		for j := range 10 {
			pubs = append(pubs, &pub{sa: i, pod: j, tok: w.token(b, i, j)})
		}
	}
	id := func(p *pub) backend.Identity {
		id := backend.Identity{Namespace: identityNS, ServiceAccount: fmt.Sprint("sa", p.sa), Tokens: []backend.Token{p.tok}}
		if noSA {
			id.ServiceAccount = ""
		}
		return id
	}
	root := b.TempDir()
	b.StartTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 25)
	for k, p := range pubs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			dir := filepath.Join(root, fmt.Sprint(k))
			os.Mkdir(dir, 0o755)
			spec := projection.Spec{Namespace: identityNS, SecretName: fmt.Sprint("s", secret(p.sa, p.pod))}
			v, err := mounted.Mount(w.ctx, ch, dir, mounted.Config{Spec: spec, Identity: id(p), Logger: quiet})
			if err != nil {
				b.Errorf("publish %d: %v", k, err)
				return
			}
			p.vol = v
		})
	}
	wg.Wait()
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "publish-100-ms")
	if rotate {
		for _, p := range pubs {
			p.tok = w.token(b, p.sa, p.pod)
		}
		for _, p := range pubs {
			if p.vol != nil {
				if err := p.vol.Resubscribe(w.ctx, ch, id(p), nil); err != nil {
					b.Errorf("republish: %v", err)
				}
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // the watches open after the first reads
	b.StopTimer()
	for _, p := range pubs {
		if p.vol != nil {
			p.vol.Unmount()
			<-p.vol.Done()
		}
	}
	evs, err := w.c.AuditEvents()
	if err != nil {
		b.Fatal(err)
	}
	got := map[string]int{"watches": 0, "gets": 0, "lists": 0}
	for _, ev := range evs {
		if ev.UserAgent != cfg.UserAgent && !hasPrefix(ev.UserAgent, cfg.UserAgent+"/") {
			continue
		}
		switch ev.Verb {
		case "watch":
			got["watches"]++
		case "get":
			got["gets"]++
		case "list":
			got["lists"]++
		}
	}
	b.StartTimer()
	return got
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
