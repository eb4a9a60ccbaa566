package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// ApplyRBAC creates the objects of a rendered RBAC manifest such as
// deploy/rbac.yaml (Namespace, ServiceAccount, ClusterRole and
// ClusterRoleBinding documents; other kinds are an error), waits until
// its service account may do each of verbs on what attrs names, and
// returns a token of that account: a test runs the plugin with the
// identity the chart gives it.
func (c *Cluster) ApplyRBAC(ctx context.Context, path string, attrs authorizationv1.ResourceAttributes, verbs ...string) (token string, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	api := c.Client()
	opts := metav1.CreateOptions{}
	var sa *corev1.ServiceAccount
	for i, doc := range strings.Split(string(raw), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return "", fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		switch meta.Kind {
		case "Namespace":
			err = create(doc, func(o *corev1.Namespace) error { _, err := api.CoreV1().Namespaces().Create(ctx, o, opts); return err })
		case "ServiceAccount":
			err = create(doc, func(o *corev1.ServiceAccount) error {
				sa = o
				_, err := api.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
				return err
			})
		case "ClusterRole":
			err = create(doc, func(o *rbacv1.ClusterRole) error {
				_, err := api.RbacV1().ClusterRoles().Create(ctx, o, opts)
				return err
			})
		case "ClusterRoleBinding":
			err = create(doc, func(o *rbacv1.ClusterRoleBinding) error {
				_, err := api.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
				return err
			})
		default:
			err = fmt.Errorf("kind %q is not applied here", meta.Kind)
		}
		if err != nil {
			return "", fmt.Errorf("%s: document %d (%s): %w", path, i+1, meta.Kind, err)
		}
	}
	if sa == nil {
		return "", fmt.Errorf("%s: no ServiceAccount", path)
	}
	if err := c.WaitAllowed(ctx, sa.Namespace, sa.Name, attrs, verbs...); err != nil {
		return "", err
	}
	return c.TokenFor(ctx, sa.Namespace, sa.Name)
}

// create decodes one YAML document into a T and creates it.
func create[T any](doc string, fn func(*T) error) error {
	var o T
	if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
		return err
	}
	return fn(&o)
}

// WaitAllowed waits until namespace/serviceAccount may do each of verbs
// on what attrs names (its Verb is ignored): the apiserver's authorizer
// learns of new bindings through its own watch, a moment after they were
// created.
func (c *Cluster) WaitAllowed(ctx context.Context, namespace, serviceAccount string, attrs authorizationv1.ResourceAttributes, verbs ...string) error {
	api := c.Client()
	user := "system:serviceaccount:" + namespace + ":" + serviceAccount
	for _, verb := range verbs {
		a := attrs
		a.Verb = verb
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			r, err := api.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: &a}}, metav1.CreateOptions{})
			if err == nil && r.Status.Allowed {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s may not %s %s %q in %q 10 s after the grant (%v)", user, verb, a.Resource, a.Name, a.Namespace, err)
			}
		}
	}
	return nil
}
