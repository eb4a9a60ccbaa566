package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/envdir"
	"github.com/secretfs/secretfs/secret"
)

const envSynopsis = `secretfs env  (--source SOURCE [--namespace NS] --secret NAME... | --dir DIR)
       secretfs exec (--source SOURCE [--namespace NS] --secret NAME... | --dir DIR)
                     [--on-change restart|signal:NAME|none] [--grace 10s]
                     [--debounce 100ms] [--splay DURATION] -- CMD [ARGS...]

Applies Secrets as a container's envFrom does: every key that is a valid
variable name ([A-Za-z_][A-Za-z0-9_]*) becomes a variable; other keys, and
values containing a NUL byte, are skipped and named on stderr. With
several --secret, a later Secret wins a variable (named on stderr).
--dir reads a mounted secret volume instead (secretfs's or kubelet's):
its top-level files, dotfiles left out.
env prints export K='V' lines for a POSIX shell: eval "$(secretfs env ...)".
exec runs CMD with them added to the environment, stays its parent
(signals passed on, zombies reaped, its exit status returned) and, with
--on-change, follows the Secret: restart stops CMD (SIGTERM, SIGKILL after
--grace) and runs it again with the new variables; signal:HUP sends it
SIGHUP. Only a change of the variables counts; changes within --debounce
count once; --splay waits a random time up to it before acting.`

func init() {
	commands["env"] = command{"print Secrets as shell export lines (envFrom)", func(a []string, o, e io.Writer) int { return runEnv(a, o, e, false) }}
	commands["exec"] = command{"run a command with Secrets in its environment; restart or signal it when they change", func(a []string, o, e io.Writer) int { return runEnv(a, o, e, true) }}
}

// envSecretNames collects the repeatable --secret of env and exec.
type envSecretNames []string

func (f *envSecretNames) String() string     { return strings.Join(*f, ",") }
func (f *envSecretNames) Set(s string) error { *f = append(*f, s); return nil }

// envFlags are the flags of env and exec.
type envFlags struct {
	source, namespace, dir string
	secrets                envSecretNames
	onChange               string
	grace, debounce, splay time.Duration
}

func runEnv(args []string, stdout, stderr io.Writer, execute bool) int {
	name := map[bool]string{false: "env", true: "exec"}[execute]
	var f envFlags
	fs := newFlagSet(name, envSynopsis, stderr)
	fs.StringVar(&f.source, "source", "", "where Secrets come from: file:DIR or kube")
	fs.StringVar(&f.namespace, "namespace", "default", "the Secrets' namespace")
	fs.StringVar(&f.namespace, "n", "default", "short for --namespace")
	fs.Var(&f.secrets, "secret", "a Secret's name (repeatable: a later one wins a variable)")
	fs.StringVar(&f.dir, "dir", "", "read a mounted secret volume's files instead of --source/--secret")
	if execute {
		fs.StringVar(&f.onChange, "on-change", "none", "when the variables change: restart, signal:NAME (e.g. signal:HUP) or none")
		fs.DurationVar(&f.grace, "grace", 10*time.Second, "restart: how long after SIGTERM before SIGKILL")
		fs.DurationVar(&f.debounce, "debounce", 100*time.Millisecond, "changes within this time count once")
		fs.DurationVar(&f.splay, "splay", 0, "wait a random time up to this before restarting or signalling")
	}
	pos, rest, err := parseInterleaved(fs, args)
	if err != nil {
		return fs.fail(err)
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "secretfs %s: %v\n", name, err)
		return 1
	}
	switch {
	case execute && len(rest) == 0:
		return fail(errors.New("want a command after --"))
	case len(pos) > 0:
		return fail(fmt.Errorf("unexpected argument %q (a command goes after --)", pos[0]))
	case !execute && len(rest) > 0:
		return fail(errors.New("env takes no command; use exec"))
	}
	if err := f.check(); err != nil {
		fmt.Fprintf(stderr, "secretfs %s: %v\n", name, err)
		return 2
	}
	if !execute {
		return printEnv(f, stdout, stderr, fail)
	}
	return runExec(f, rest, stderr, fail)
}

// check refuses bad flags before anything is read or run.
func (f *envFlags) check() error {
	switch {
	case f.dir != "" && (f.source != "" || len(f.secrets) > 0):
		return errors.New("--dir reads a mounted volume: give it without --source and --secret")
	case f.dir == "" && len(f.secrets) == 0:
		return errors.New("--secret is required (or --dir)")
	case f.grace < 0:
		return fmt.Errorf("--grace %v: must not be negative", f.grace)
	case f.debounce < 0:
		return fmt.Errorf("--debounce %v: must not be negative", f.debounce)
	case f.splay < 0:
		return fmt.Errorf("--splay %v: must not be negative", f.splay)
	}
	for _, s := range f.secrets {
		if s == "" {
			return errors.New("--secret: empty name")
		}
	}
	if f.onChange != "" {
		if _, err := parseOnChange(f.onChange); err != nil {
			return err
		}
	}
	return nil
}

// printEnv is env: the variables once, as export lines.
func printEnv(f envFlags, stdout, stderr io.Writer, fail func(error) int) int {
	var vars []secret.EnvVar
	if f.dir != "" {
		v, err := envdir.Read(f.dir)
		if err != nil {
			return fail(fmt.Errorf("--dir %s: %w", f.dir, err))
		}
		(&notes{w: stderr}).dir(f.dir, v)
		vars = v.Vars
	} else {
		ss, err := getSecrets(f)
		if err != nil {
			return fail(err)
		}
		vars = (&notes{w: stderr}).secrets(ss)
	}
	for _, v := range vars {
		fmt.Fprintf(stdout, "export %s=%s\n", v.Name, secret.ShellQuote(v.Value))
	}
	return 0
}

// getSecrets reads each --secret once.
func getSecrets(f envFlags) ([]*secret.Secret, error) {
	b, err := openSource(f.source)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ss []*secret.Secret
	for _, name := range f.secrets {
		s, err := b.Get(ctx, backend.Ref{Namespace: f.namespace, Name: name})
		if err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	return ss, nil
}

// notes tells on stderr which keys were skipped and which variables a
// later Secret overrode: names only, and each text once, not at every
// re-read.
type notes struct {
	w    io.Writer
	last string
}

func (n *notes) say(lines []string) {
	text := strings.Join(lines, "\n")
	if text != "" && text != n.last {
		fmt.Fprintln(n.w, text)
	}
	n.last = text
}

// secrets merges the Secrets' variables in order (envFrom).
func (n *notes) secrets(ss []*secret.Secret) []secret.EnvVar {
	var lines []string
	srcs := make([]secret.EnvSource, 0, len(ss))
	for _, s := range ss {
		vars, skipped := secret.EnvFrom(s)
		if len(skipped) > 0 {
			lines = append(lines, secret.SkippedMessage(skipped, s.Ref()))
		}
		srcs = append(srcs, secret.EnvSource{Ref: s.Ref(), Vars: vars})
	}
	vars, overrides := secret.MergeEnv(srcs)
	for _, o := range overrides {
		lines = append(lines, o.String())
	}
	n.say(lines)
	return vars
}

func (n *notes) dir(dir string, v envdir.Vars) {
	var lines []string
	if len(v.Skipped) > 0 {
		lines = append(lines, secret.SkippedMessage(v.Skipped, dir))
	}
	n.say(lines)
}

// environ is this process's environment with vars set: they replace
// inherited variables of the same name (execve keeps duplicates, and most
// programs would read the first).
func environ(vars []secret.EnvVar) []string {
	set := map[string]bool{}
	var env []string
	for _, v := range vars {
		set[v.Name] = true
		env = append(env, v.Name+"="+string(v.Value))
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			env = append(env, kv)
		}
	}
	return env
}
