package provider

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/metrics"
)

// refresh makes one call for the entry with req, applies the reply and
// tells every member how it went (a failed call keeps the last good
// files).
func (e *entry) refresh(ctx context.Context, req *Request) error {
	err := e.call(ctx, req)
	for m := range e.members {
		if m.onRefresh != nil {
			m.onRefresh(err)
		}
	}
	return err
}

// call asks the provider and applies a good reply.
func (e *entry) call(ctx context.Context, req *Request) error {
	p := e.pool
	class, err := p.classes.GetClass(ctx, req.Namespace, req.Class)
	switch {
	case errors.Is(err, backend.ErrClassNotFound):
		return errorf(codes.NotFound, "secretproviderclass %s/%s not found", req.Namespace, req.Class)
	case errors.Is(err, backend.ErrForbidden):
		return errorf(codes.PermissionDenied, "%v", err)
	case err != nil:
		return errorf(codes.Unavailable, "secretproviderclass %s/%s: %v", req.Namespace, req.Class, err)
	}
	if err := CheckName(class.Provider); err != nil {
		return err
	}
	provider := class.Provider
	start := time.Now()
	resp, err := p.client.Mount(ctx, provider, newRequest(req, class, e.versions))
	var files *Files
	if err == nil {
		files, err = checkReply(provider, resp, req.DefaultMode)
	}
	count(provider, resp, err)
	if err != nil {
		return err
	}
	if files.Len() == 0 {
		// Old providers wrote into target_path themselves; here that
		// folder is a read-only mount, so they must send files.
		p.log.Warn("provider replied with no files", "provider", provider, "class", req.Namespace+"/"+req.Class)
	}
	e.apply(provider, files, start)
	return nil
}

// apply installs a good reply. Equal files cause no switch; the versions
// are remembered either way.
func (e *entry) apply(provider string, files *Files, asked time.Time) {
	e.versions, e.fetched = files.versions, asked
	if e.files != nil && e.provider == provider && e.files.equal(files) {
		files.wipe()
		return
	}
	old, oldProvider := e.files, e.label()
	e.files, e.provider = files, provider
	if old != nil {
		metrics.ProviderFiles.WithLabelValues(oldProvider).Sub(float64(old.Len()))
	}
	metrics.ProviderFiles.WithLabelValues(provider).Add(float64(files.Len()))
	for m := range e.members {
		m.onChange(files)
	}
	old.wipe() // every member switched: the filesystems hold copies
}

// count records a call's result by provider and code: OK, the gRPC code of
// a failure, or "error.code=<provider's code>" for a reply error.
func count(provider string, resp *v1alpha1.MountResponse, err error) {
	code := codes.OK.String()
	var e *Error
	switch {
	case resp.GetError().GetCode() != "" && err != nil:
		code = "error.code=" + resp.GetError().GetCode()
		if !codeRE.MatchString(resp.GetError().GetCode()) {
			code = "error.code"
		}
	case errors.As(err, &e):
		code = e.Code.String()
	case err != nil:
		code = codes.Unknown.String()
	}
	metrics.ProviderRequests.WithLabelValues(provider, code).Inc()
}
