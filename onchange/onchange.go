package onchange

import (
	"bytes"
	"context"
	"math/rand/v2"
	"time"

	"github.com/secretfs/secretfs/secret"
)

// Options say how Run acts on a change.
type Options struct {
	Debounce time.Duration // hints within it are one change
	Splay    time.Duration // the longest random wait before acting
	// Read returns the variables now. An error is Reported; the command
	// keeps what it has.
	Read func() ([]secret.EnvVar, error)
	// Apply acts on a change: vars are the new variables, changed the
	// names added, removed or with a new value. An error ends Run.
	Apply func(vars []secret.EnvVar, changed []string) error
	// Report tells of a failed Read (never a value).
	Report func(err error)
}

// Run follows hints until ctx is done (nil) or Apply fails (its error);
// cur is what the command runs with now. See the package doc.
func Run(ctx context.Context, hints <-chan struct{}, cur []secret.EnvVar, o Options) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hints:
		}
		if !sleep(ctx, o.Debounce) {
			return nil
		}
		drain(hints)
		next, ok := o.read(cur)
		if !ok {
			continue
		}
		if o.Splay > 0 {
			if !sleep(ctx, rand.N(o.Splay)) {
				return nil
			}
			if next, ok = o.read(cur); !ok {
				continue
			}
		}
		if err := o.Apply(next, Changed(cur, next)); err != nil {
			return err
		}
		cur = next
	}
}

// read returns the variables if they differ from cur.
func (o Options) read(cur []secret.EnvVar) ([]secret.EnvVar, bool) {
	next, err := o.Read()
	if err != nil {
		if o.Report != nil {
			o.Report(err)
		}
		return nil, false
	}
	return next, !secret.EqualEnv(cur, next)
}

// Changed names the variables that a and b (both sorted by name) do not
// share with the same value, sorted.
func Changed(a, b []secret.EnvVar) []string {
	var out []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Name < b[j].Name):
			out = append(out, a[i].Name)
			i++
		case i == len(a) || b[j].Name < a[i].Name:
			out = append(out, b[j].Name)
			j++
		default:
			if !bytes.Equal(a[i].Value, b[j].Value) {
				out = append(out, a[i].Name)
			}
			i++
			j++
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func drain(hints <-chan struct{}) {
	for {
		select {
		case <-hints:
		default:
			return
		}
	}
}
