package secret

import (
	"os/exec"
	"slices"
	"testing"
)

func TestEnvFrom(t *testing.T) {
	s := newSecret("",
		"USER_NAME", "admin", "PASSWORD", "1f2d1e2e67df", "_x9", "u",
		"2alsobad", "v", "1badkey", "v", "dot.key", "v", "dash-key", "v",
		"NUL_VAL", "a\x00b", "EMPTY", "")
	vars, skipped := EnvFrom(s)
	var names []string
	for _, v := range vars {
		names = append(names, v.Name)
	}
	if want := []string{"EMPTY", "PASSWORD", "USER_NAME", "_x9"}; !slices.Equal(names, want) {
		t.Errorf("vars %v, want %v", names, want)
	}
	if want := []string{"1badkey", "2alsobad", "NUL_VAL", "dash-key", "dot.key"}; !slices.Equal(skipped, want) {
		t.Errorf("skipped %v, want %v", skipped, want)
	}
}

func TestSkippedMessage(t *testing.T) {
	got := SkippedMessage([]string{"1badkey", "2alsobad"}, "default/mysecret")
	want := "Keys [1badkey, 2alsobad] from the EnvFrom secret default/mysecret were skipped since they are considered invalid environment variable names."
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	got = SkippedMessage([]string{"1badkey", "NUL_VAL"}, "ns/s")
	want = "Keys [1badkey] from the EnvFrom secret ns/s were skipped since they are considered invalid environment variable names.\n" +
		"Keys [NUL_VAL] from the EnvFrom secret ns/s were skipped since their values contain a NUL byte."
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := SkippedMessage(nil, "ns/s"); got != "" {
		t.Errorf("nothing skipped: %q", got)
	}
}

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		"":              "''",
		"plain":         "'plain'",
		"it's":          `'it'\''s'`,
		"$HOME `x` \\n": "'$HOME `x` \\n'",
		"a\nb":          "'a\nb'",
		"''":            `''\'''\'''`,
	}
	for in, want := range tests {
		if got := ShellQuote([]byte(in)); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
	// A shell reads each value back byte for byte.
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for in := range tests {
		out, err := exec.Command(sh, "-c", "printf %s "+ShellQuote([]byte(in))).Output()
		if err != nil || string(out) != in {
			t.Errorf("sh round trip of %q: %q, %v", in, out, err)
		}
	}
}
