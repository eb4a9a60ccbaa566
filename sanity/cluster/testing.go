package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Start builds the binaries if needed (bounded by the test deadline; see the
// package comment), starts a control plane in a temp dir and stops it at
// t.Cleanup. On failure the apiserver log is kept and its path logged.
func Start(t testing.TB) *Cluster {
	t.Helper()
	ctx := context.Background()
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			// Leave a minute to report instead of panicking on timeout.
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Minute))
			defer cancel()
		}
	}
	if !Built("etcd", "kube-apiserver") {
		if testing.Short() {
			t.Skipf("-short: control-plane binaries not built; run %s first", "sanity/cluster/build.sh")
		}
		t.Logf("building etcd and kube-apiserver into %s (cold: ~11 min)", BinDir())
	}
	if err := EnsureBinaries(ctx, "etcd", "kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: that would delete the logs of a failed test.
	dir, err := os.MkdirTemp("", "secretfs-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := StartControlPlane(ctx, dir, Options{Log: slog.Default().With("test", t.Name())})
	t.Cleanup(func() {
		if c != nil {
			c.Stop()
		}
		if t.Failed() {
			t.Logf("control plane kept in %s: etcd.log, kube-apiserver.log, audit.log", dir)
		} else {
			os.RemoveAll(dir)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TokenFor returns a one-hour token of namespace/serviceAccount from the
// TokenRequest API, creating the ServiceAccount if missing (there is no
// controller-manager to do it). The namespace must exist ("default" does).
// With RBAC on, the account can do nothing until the test grants it roles.
func (c *Cluster) TokenFor(ctx context.Context, namespace, serviceAccount string) (string, error) {
	sas := c.Client().CoreV1().ServiceAccounts(namespace)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: serviceAccount}}
	if _, err := sas.Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	exp := int64(3600)
	tr, err := sas.CreateToken(ctx, serviceAccount,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", namespace, serviceAccount, err)
	}
	return tr.Status.Token, nil
}
