// Package backend defines where Secrets come from. Implementations live in
// sub-packages (file, kube, csireq); the cache is their only caller.
package backend

import (
	"context"
	"errors"

	"github.com/secretfs/secretfs/secret"
)

// ErrNotFound is wrapped by Get when the Secret does not exist.
var ErrNotFound = errors.New("secret not found")

// ErrForbidden is wrapped when the identity may not read the Secret (RBAC).
var ErrForbidden = errors.New("forbidden")

// ErrNoWatch is returned by Watch of a backend that cannot watch; the cache
// then polls with Get.
var ErrNoWatch = errors.New("backend cannot watch")

// Ref names one Secret as seen by one identity.
type Ref struct {
	Namespace string
	Name      string
	// Token, when set, is a bearer token to read with (a pod's service
	// account token); empty means the backend's own credentials.
	Token string
}

func (r Ref) String() string { return r.Namespace + "/" + r.Name }

// Event is one observation made by a watch.
type Event struct {
	Secret  *secret.Secret // the current Secret; nil when Deleted
	Deleted bool
	// Err is a failure the watch could not hide (an invalid Secret, the
	// source unreachable). The cache keeps serving the last good version.
	Err error
}

// Backend reads Secrets.
type Backend interface {
	// Get reads the Secret now. A missing Secret is an error wrapping
	// ErrNotFound; an invalid one a *secret.InvalidError; anything else
	// means the source is unreachable.
	Get(ctx context.Context, ref Ref) (*secret.Secret, error)
	// Watch reports every change of the Secret to fn until ctx is done.
	// It first reports the current state. It returns ErrNoWatch if the
	// backend cannot watch, or the error that ended the watch.
	Watch(ctx context.Context, ref Ref, fn func(Event)) error
}
