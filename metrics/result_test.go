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
