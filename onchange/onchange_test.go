package onchange

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/secretfs/secretfs/secret"
)

func vars(kv ...string) []secret.EnvVar {
	var out []secret.EnvVar
	for i := 0; i < len(kv); i += 2 {
		out = append(out, secret.EnvVar{Name: kv[i], Value: []byte(kv[i+1])})
	}
	return out
}

// source is what Read returns; applied records each Apply.
type source struct {
	mu      sync.Mutex
	now     []secret.EnvVar
	reads   int
	applied chan []string
}

func (s *source) set(v []secret.EnvVar) { s.mu.Lock(); s.now = v; s.mu.Unlock() }

func (s *source) read() ([]secret.EnvVar, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	return s.now, nil
}

func run(t *testing.T, s *source, cur []secret.EnvVar, o Options) chan struct{} {
	hints := make(chan struct{}, 1)
	s.applied = make(chan []string, 10)
	o.Read = s.read
	o.Apply = func(v []secret.EnvVar, changed []string) error {
		s.applied <- changed
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, hints, cur, o); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return hints
}

func wantApply(t *testing.T, s *source, want ...string) {
	t.Helper()
	select {
	case got := <-s.applied:
		if !slices.Equal(got, want) {
			t.Fatalf("applied for %q, want %q", got, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no apply, want one for %q", want)
	}
}

// A hint with the same data applies nothing; the next real change
// applies once, naming what changed. The first Apply seen is the real
// change's: the rewrite before it applied nothing.
func TestOnlyDataChangesCount(t *testing.T) {
	s := &source{now: vars("A", "1", "B", "2")}
	hints := run(t, s, vars("A", "1", "B", "2"), Options{})
	hints <- struct{}{} // a rewrite with the same data
	s.set(vars("A", "1", "B", "3", "C", "4"))
	hints <- struct{}{}
	wantApply(t, s, "B", "C")
	s.set(vars("B", "3", "C", "4"))
	hints <- struct{}{}
	wantApply(t, s, "A")
}

// Hints within the debounce window are not looked at before it ends.
func TestDebounce(t *testing.T) {
	hints := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	reads := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, hints, vars("A", "1"), Options{Debounce: time.Hour,
			Read: func() ([]secret.EnvVar, error) {
				mu.Lock()
				defer mu.Unlock()
				reads++
				return vars("A", "2"), nil
			},
			Apply: func([]secret.EnvVar, []string) error { return nil }})
	}()
	hints <- struct{}{}
	hints <- struct{}{} // taken only once Run took the first: it waits now
	cancel()
	<-done
	if reads != 0 {
		t.Errorf("%d reads during the debounce window", reads)
	}
}

// A change that goes back during the splay wait applies nothing; a Read
// error is reported and keeps the command as it is; an Apply error ends
// Run.
func TestSplayAndErrors(t *testing.T) {
	reads := 0
	readErr := errors.New("unreachable")
	var reported []error
	stop := errors.New("ended")
	hints := make(chan struct{}) // unbuffered: each send is one look
	done := make(chan error)
	go func() {
		done <- Run(context.Background(), hints, vars("A", "1"), Options{Splay: time.Millisecond,
			Read: func() ([]secret.EnvVar, error) {
				reads++
				switch reads {
				case 1:
					return vars("A", "2"), nil // seen ...
				case 2:
					return vars("A", "1"), nil // ... and gone back after the splay
				case 3:
					return nil, readErr
				}
				return vars("A", "3"), nil
			},
			Apply:  func([]secret.EnvVar, []string) error { return stop },
			Report: func(err error) { reported = append(reported, err) },
		})
	}()
	for range 3 {
		hints <- struct{}{}
	}
	if err := <-done; err != stop || reads != 5 || len(reported) != 1 || reported[0] != readErr {
		t.Errorf("Run returned %v after %d reads, reported %v", err, reads, reported)
	}
}

func TestChanged(t *testing.T) {
	got := Changed(vars("A", "1", "B", "2", "D", "4"), vars("B", "2", "C", "3", "D", "5"))
	if want := []string{"A", "C", "D"}; !slices.Equal(got, want) {
		t.Errorf("Changed %q, want %q", got, want)
	}
}
