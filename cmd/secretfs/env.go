package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/secret"
)

const envSynopsis = `secretfs env --source SOURCE [--namespace NS] --secret NAME
       secretfs exec --source SOURCE [--namespace NS] --secret NAME -- CMD [ARGS...]

Applies a Secret as a container's envFrom does: every key that is a valid
variable name ([A-Za-z_][A-Za-z0-9_]*) becomes a variable; other keys, and
values containing a NUL byte, are skipped and named on stderr.
env prints export K='V' lines for a POSIX shell: eval "$(secretfs env ...)".
exec runs CMD with them added to the environment.`

func init() {
	commands["env"] = command{"print a Secret as shell export lines (envFrom)", func(a []string, o, e io.Writer) int { return runEnv(a, o, e, false) }}
	commands["exec"] = command{"run a command with a Secret in its environment (envFrom)", func(a []string, o, e io.Writer) int { return runEnv(a, o, e, true) }}
}

func runEnv(args []string, stdout, stderr io.Writer, execute bool) int {
	name := map[bool]string{false: "env", true: "exec"}[execute]
	var source, namespace, secretName string
	fs := newFlagSet(name, envSynopsis, stderr)
	fs.StringVar(&source, "source", "", "where Secrets come from: file:DIR or kube")
	fs.StringVar(&namespace, "namespace", "default", "the Secret's namespace")
	fs.StringVar(&namespace, "n", "default", "short for --namespace")
	fs.StringVar(&secretName, "secret", "", "the Secret's name (required)")
	pos, rest, err := parseInterleaved(fs, args)
	if err != nil {
		return fs.fail(err)
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "secretfs %s: %v\n", name, err)
		return 1
	}
	switch {
	case secretName == "":
		return fail(errors.New("--secret is required"))
	case execute && len(rest) == 0:
		return fail(errors.New("want a command after --"))
	case len(pos) > 0:
		return fail(fmt.Errorf("unexpected argument %q (a command goes after --)", pos[0]))
	case !execute && len(rest) > 0:
		return fail(errors.New("env takes no command; use exec"))
	}
	b, err := openSource(source)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := b.Get(ctx, backend.Ref{Namespace: namespace, Name: secretName})
	if err != nil {
		return fail(err)
	}
	vars, skipped := secret.EnvFrom(s)
	if len(skipped) > 0 {
		fmt.Fprintln(stderr, secret.SkippedMessage(skipped, s.Ref()))
	}
	if !execute {
		for _, v := range vars {
			fmt.Fprintf(stdout, "export %s=%s\n", v.Name, secret.ShellQuote(v.Value))
		}
		return 0
	}
	path, err := exec.LookPath(rest[0])
	if err != nil {
		return fail(err)
	}
	// The Secret's variables replace inherited ones of the same name;
	// execve keeps duplicates, and most programs would read the first.
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
	code, err := execCommand(path, rest, env)
	if err != nil {
		return fail(fmt.Errorf("exec %s: %w", rest[0], err))
	}
	return code
}
