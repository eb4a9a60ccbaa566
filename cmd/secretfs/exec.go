package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/envdir"
	"github.com/secretfs/secretfs/onchange"
	"github.com/secretfs/secretfs/secret"
	"github.com/secretfs/secretfs/supervise"
)

// action is --on-change: restart, a signal, or neither (none).
type action struct {
	restart bool
	sig     os.Signal
}

func (a action) follows() bool { return a.restart || a.sig != nil }

func parseOnChange(s string) (action, error) {
	switch {
	case s == "none":
		return action{}, nil
	case s == "restart":
		return action{restart: true}, nil
	case strings.HasPrefix(s, "signal:"):
		sig, err := supervise.ParseSignal(strings.TrimPrefix(s, "signal:"))
		if err != nil {
			return action{}, fmt.Errorf("--on-change %q: %w", s, err)
		}
		return action{sig: sig}, nil
	}
	return action{}, fmt.Errorf("--on-change %q: want restart, signal:NAME or none", s)
}

// cannotRun is the exit status of a command that could not start, as a
// shell and container runtimes give it: 127 when it is not found, 126
// when it is found but cannot be run.
func cannotRun(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return 127
	}
	return 126
}

// runExec runs the command under a supervise.Supervisor, also with
// --on-change none (there is no execve), so that secretfs exec is a
// proper PID 1 in every mode; with restart or signal it follows the
// variables through package onchange.
func runExec(f envFlags, argv []string, stderr io.Writer, fail func(error) int) int {
	act, _ := parseOnChange(f.onChange) // checked
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fail(err)
		return cannotRun(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := &notes{w: stderr}
	src, err := openVars(ctx, f, n, act.follows())
	if err != nil {
		return fail(err)
	}
	vars, err := src.read()
	if err != nil {
		return fail(err)
	}
	sup, err := supervise.Start(supervise.Command{Path: path, Args: argv}, environ(vars), f.grace)
	if err != nil {
		fail(fmt.Errorf("exec %s: %w", argv[0], err))
		return cannotRun(err)
	}
	if act.follows() {
		go onchange.Run(ctx, src.hints, vars, onchange.Options{
			Debounce: f.debounce, Splay: f.splay, Read: src.read,
			Apply: func(vars []secret.EnvVar, changed []string) error {
				return apply(sup, act, vars, changed, stderr)
			},
			Report: func(err error) {
				fmt.Fprintf(stderr, "secretfs exec: the command keeps its variables: %v\n", err)
			},
		})
	}
	<-sup.Done()
	return sup.Code()
}

// apply restarts or signals the command for a change of the variables
// named in changed (names only: never a value).
func apply(sup *supervise.Supervisor, act action, vars []secret.EnvVar, changed []string, stderr io.Writer) error {
	what := strings.Join(changed, ", ")
	if act.restart {
		fmt.Fprintf(stderr, "secretfs exec: %s changed; restarting the command\n", what)
		err := sup.Restart(environ(vars))
		if err != nil && err != supervise.ErrEnded {
			fmt.Fprintf(stderr, "secretfs exec: %v\n", err)
		}
		return err
	}
	fmt.Fprintf(stderr, "secretfs exec: %s changed; sending the command %v\n", what, act.sig)
	return sup.Signal(act.sig)
}

// varSource gives the variables now and, when followed, hints that they
// may have changed.
type varSource struct {
	read  func() ([]secret.EnvVar, error)
	hints chan struct{}
}

func openVars(ctx context.Context, f envFlags, n *notes, follow bool) (*varSource, error) {
	src := &varSource{hints: make(chan struct{}, 1)}
	switch {
	case f.dir != "":
		src.read = func() ([]secret.EnvVar, error) {
			v, err := envdir.Read(f.dir)
			if err != nil {
				return nil, fmt.Errorf("--dir %s: %w", f.dir, err)
			}
			n.dir(f.dir, v)
			return v.Vars, nil
		}
		if follow {
			if err := envdir.Watch(ctx, f.dir, src.hints); err != nil {
				fmt.Fprintf(n.w, "secretfs exec: --dir %s: %v; looking every %v instead\n", f.dir, err, envdir.PollInterval)
			}
		}
	case follow:
		return src, src.subscribe(ctx, f, n)
	default:
		ss, err := getSecrets(f)
		if err != nil {
			return nil, err
		}
		vars := n.secrets(ss)
		src.read = func() ([]secret.EnvVar, error) { return vars, nil }
	}
	return src, nil
}

// subscribe follows every --secret through one cache (a watch each, as a
// mount does); a cache notification is a hint. A Secret deleted later
// keeps its last variables, as a mount keeps its last version.
func (src *varSource) subscribe(ctx context.Context, f envFlags, n *notes) error {
	b, err := openSource(f.source)
	if err != nil {
		return err
	}
	c := cache.New(b, cache.Options{Logger: slog.New(slog.DiscardHandler)})
	context.AfterFunc(ctx, c.Close)
	subs := make([]*cache.Subscription, len(f.secrets))
	last := make([]*secret.Secret, len(f.secrets))
	for i, name := range f.secrets {
		ref := backend.Ref{Namespace: f.namespace, Name: name}
		sub, st := c.Subscribe(ctx, ref, backend.Identity{}, cache.StrategyWatch, 0, func(cache.State) {
			select {
			case src.hints <- struct{}{}:
			default:
			}
		})
		switch {
		case st.Secret == nil && st.Err != nil:
			return st.Err
		case st.Secret == nil:
			return fmt.Errorf("secret %s: not found", ref)
		}
		subs[i], last[i] = sub, st.Secret
	}
	src.read = func() ([]secret.EnvVar, error) {
		for i, sub := range subs {
			if s := sub.State().Secret; s != nil {
				last[i] = s
			}
		}
		return n.secrets(last), nil
	}
	return nil
}
