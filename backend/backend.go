package backend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/secretfs/secretfs/secret"
)

// ErrNotFound is wrapped by Get when the Secret does not exist.
var ErrNotFound = errors.New("secret not found")

// ErrForbidden is wrapped when the identity may not read the Secret (RBAC),
// or its token was rejected (expired, revoked, for another audience).
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
	// Rewatch, when set, gives the token for each further request of a
	// Watch after its first list and watch (a watch resumed after its
	// timeout, a relist): the caller's freshest token then, so a long
	// Watch never outlives the tokens it was lent. ok false: none is
	// left, and Watch ends with an error wrapping ErrForbidden.
	Rewatch func() (token string, ok bool)
}

func (r Ref) String() string { return r.Namespace + "/" + r.Name }

// Identity is who a volume reads as: a pod's service account and the
// tokens kubelet issued for it (one per audience), or the zero value for
// the backend's own credentials. All tokens of one service account carry
// the same RBAC, which is why the cache lets the volumes of one account
// share an entry and read with whichever of their tokens is accepted.
type Identity struct {
	Namespace      string // of the service account (the pod's namespace)
	ServiceAccount string // empty when kubelet did not say: then tokens are never shared
	Tokens         []Token
}

// Token is one bearer token and when it expires (zero: not known).
type Token struct {
	Value  string
	Expiry time.Time
}

// Own reports whether id reads with the backend's own credentials.
func (id Identity) Own() bool { return len(id.Tokens) == 0 }

// Name says who id is, for logs and errors; never a token.
func (id Identity) Name() string {
	switch {
	case id.Own():
		return "the plugin's credentials"
	case id.ServiceAccount == "":
		return "a pod's token"
	}
	return "service account " + id.Namespace + "/" + id.ServiceAccount
}

// Event is one observation made by a watch.
type Event struct {
	Secret  *secret.Secret // the current Secret; nil when Deleted
	Deleted bool
	// Err is a failure the watch reports and carries on from (an
	// invalid version of the Secret, a source that is partly unreadable).
	// The cache keeps serving the last good version.
	Err error
}

// Backend reads Secrets.
type Backend interface {
	// Get reads the Secret now. A missing Secret is an error wrapping
	// ErrNotFound; an invalid one a *secret.InvalidError; a refused
	// identity ErrForbidden; anything else means the source is
	// unreachable.
	Get(ctx context.Context, ref Ref) (*secret.Secret, error)
	// Watch reports every change of the Secret to fn until ctx is done.
	// It first reports the current state. It returns ErrNoWatch if the
	// backend cannot watch, or the error that ended the watch (the
	// cache restarts it with backoff, or with another token after an
	// error wrapping ErrForbidden).
	Watch(ctx context.Context, ref Ref, fn func(Event)) error
}

// Owner is implemented by a backend whose Get and Watch hand out Secrets
// that nobody else holds: once the cache is done with one it may wipe its
// bytes. A backend that shares parsed Secrets between callers (the file
// source does) must not implement it.
type Owner interface {
	// CallerOwnsSecrets reports whether the caller owns returned Secrets.
	CallerOwnsSecrets() bool
}

// TokenServiceAccount reads the service account a Kubernetes service
// account token names in its "sub" claim (system:serviceaccount:NS:NAME),
// WITHOUT verifying the token: only the API server can. Callers use it to
// refuse sharing between a token and an account it does not even claim,
// never to grant anything.
func TokenServiceAccount(token string) (namespace, name string, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", "", false
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(claims.Sub, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	return namespace, name, ok && namespace != "" && name != ""
}
