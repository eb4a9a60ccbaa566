package metrics

import (
	"errors"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secret"
)

// Result is the label of an outcome, the one set BackendReads ("result")
// and RefreshErrors ("reason") share:
//
//	ok           no error (reads only)
//	notfound     the Secret, or a key an item names, is missing
//	             (backend.ErrNotFound, *projection.NotFoundError)
//	invalid      the Secret is not valid (*secret.InvalidError)
//	forbidden    the identity was refused (backend.ErrForbidden)
//	conflict     two sources of one volume give one path
//	             (*projection.ConflictError; refreshes only)
//	unavailable  anything else: the source could not be read
//
// RefreshErrors has one more, "provider", for a Secrets Store provider's
// failed refresh (see ProviderRefreshErrors).
func Result(err error) string {
	var invalid *secret.InvalidError
	var missing *projection.NotFoundError
	var conflict *projection.ConflictError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, backend.ErrNotFound), errors.As(err, &missing):
		return "notfound"
	case errors.As(err, &invalid):
		return "invalid"
	case errors.Is(err, backend.ErrForbidden):
		return "forbidden"
	case errors.As(err, &conflict):
		return "conflict"
	}
	return "unavailable"
}
