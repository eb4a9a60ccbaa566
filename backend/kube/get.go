package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/secret"
)

// Get reads the Secret now.
func (b *Backend) Get(ctx context.Context, ref backend.Ref) (*secret.Secret, error) {
	c, err := b.client(ref)
	if err != nil {
		return nil, err
	}
	obj, err := c.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, apiError(ref, "get", err)
	}
	return convert(obj)
}

// convert turns an API object into our model. Not secret.FromData: that
// validates before Annotations are set, and the service-account-token
// type needs its annotation.
func convert(obj *corev1.Secret) (*secret.Secret, error) {
	s := &secret.Secret{
		Namespace:       obj.Namespace,
		Name:            obj.Name,
		Type:            string(obj.Type),
		Data:            maps.Clone(obj.Data),
		Immutable:       obj.Immutable != nil && *obj.Immutable,
		Annotations:     maps.Clone(obj.Annotations),
		ResourceVersion: obj.ResourceVersion,
		Origin:          Origin,
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	// The apiserver enforces most rules already, but not all of ours
	// (e.g. an object stored by an older version); a *secret.InvalidError.
	if err := secret.Validate(s); err != nil {
		return nil, err
	}
	return s, nil
}

// apiError maps an API failure of verb on ref to the backend's errors.
// Messages name the Secret and the identity, never the token.
func apiError(ref backend.Ref, verb string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("secret %s: %w", ref, backend.ErrNotFound)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("secret %s: %w: %s may not %s it: %w", ref, backend.ErrForbidden, identity(ref, err), verb, err)
	case apierrors.IsUnauthorized(err):
		// An expired or revoked token: no read will succeed until the
		// caller brings a new one, so it is a refusal, not an outage.
		return fmt.Errorf("secret %s: %w: %s was rejected (unauthorized): %w", ref, backend.ErrForbidden, identity(ref, nil), err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("secret %s: %s: %w", ref, verb, err)
	}
	return fmt.Errorf("secret %s: kubernetes API unreachable (%s): %w", ref, verb, err)
}

// userRE finds the user in RBAC's message: `User "system:serviceaccount:ns:sa" cannot get …`.
var userRE = regexp.MustCompile(`User "([^"]+)"`)

// identity names who was refused, as precisely as we can tell without
// verifying anything: the user from the apiserver's message, else the
// subject claim of the token, else where the credentials came from.
func identity(ref backend.Ref, err error) string {
	if err != nil {
		if m := userRE.FindStringSubmatch(err.Error()); m != nil {
			return describeUser(m[1])
		}
	}
	if ref.Token == "" {
		return "the plugin's credentials"
	}
	if ns, sa, ok := backend.TokenServiceAccount(ref.Token); ok {
		return "service account " + ns + "/" + sa
	}
	return "the pod's token"
}

func describeUser(user string) string {
	if rest, ok := strings.CutPrefix(user, "system:serviceaccount:"); ok {
		if ns, sa, ok := strings.Cut(rest, ":"); ok {
			return "service account " + ns + "/" + sa
		}
	}
	return fmt.Sprintf("user %q", user)
}
