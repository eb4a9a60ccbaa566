package metrics

import (
	"errors"
	"fmt"
	"testing"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secret"
)

func TestResult(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{fmt.Errorf("secret default/db: %w", backend.ErrNotFound), "notfound"},
		{&projection.NotFoundError{Ref: "default/db", Key: "password"}, "notfound"},
		{fmt.Errorf("project: %w", &projection.NotFoundError{Ref: "default/db"}), "notfound"},
		{&secret.InvalidError{Object: "default/db", Reason: "bad"}, "invalid"},
		{fmt.Errorf("read: %w", &secret.InvalidError{Reason: "bad"}), "invalid"},
		{fmt.Errorf("token: %w", backend.ErrForbidden), "forbidden"},
		{errors.New("connection refused"), "unavailable"},
		{fmt.Errorf("watch: %w", backend.ErrNoWatch), "unavailable"},
	} {
		if got := Result(c.err); got != c.want {
			t.Errorf("Result(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// TestStartAtZero: the labelled series alerts and dashboards query exist
// before any event, at 0, with exactly Result's reasons (and "provider").
func TestStartAtZero(t *testing.T) {
	want := map[string]bool{"notfound": true, "invalid": true, "forbidden": true, "conflict": true, "unavailable": true, "provider": true}
	for _, err := range []error{backend.ErrNotFound, &secret.InvalidError{}, backend.ErrForbidden, &projection.ConflictError{}, errors.New("x")} {
		if !want[Result(err)] {
			t.Errorf("Result gives %q, not started at zero", Result(err))
		}
	}
	mfs, err := Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mf := range mfs {
		got[mf.GetName()] = len(mf.GetMetric())
	}
	for name, n := range map[string]int{
		"secretfs_refresh_errors_total": len(want),
		"secretfs_auth_failures_total":  2,
		"secretfs_csi_publish_total":    1,
	} {
		if got[name] < n {
			t.Errorf("%s: %d series at start, want at least %d", name, got[name], n)
		}
	}
}
