package csi

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secret"
)

// mountError maps an error of mounted.Mount (or of building a Secret from the
// request) to its gRPC code: NotFound for a missing Secret or key,
// FailedPrecondition for an invalid Secret or two sources giving one
// path, PermissionDenied for a refused
// identity, Unavailable when the source cannot be read, else Internal. The messages name objects
// and keys, never values, so they travel to kubelet's Pod events as is.
func mountError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var nf *projection.NotFoundError
	var invalid *secret.InvalidError
	var conflict *projection.ConflictError
	code := codes.Internal
	switch {
	case errors.As(err, &nf):
		code = codes.NotFound
	case errors.As(err, &invalid), errors.As(err, &conflict):
		code = codes.FailedPrecondition
	case errors.Is(err, backend.ErrForbidden):
		code = codes.PermissionDenied
	case errors.Is(err, mounted.ErrUnavailable):
		code = codes.Unavailable
	}
	return status.Error(code, err.Error())
}

func invalidArg(err error) error { return status.Error(codes.InvalidArgument, err.Error()) }
