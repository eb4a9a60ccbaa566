package secret

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// EnvVar is one environment variable taken from a Secret key (envFrom).
type EnvVar struct {
	Name  string
	Value []byte
}

// envNameRE is the variable name rule of `secretfs env` and `exec`: POSIX
// shell names, so every exported line can be sourced.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// IsEnvName reports whether key can be an environment variable name.
func IsEnvName(key string) bool { return envNameRE.MatchString(key) }

// EnvFrom applies s as envFrom does: keys that are valid variable names
// become vars, sorted by name. Keys with an invalid name, or whose value
// holds a NUL byte (the C environment cannot carry it), are skipped and
// returned sorted, by key only.
func EnvFrom(s *Secret) (vars []EnvVar, skipped []string) {
	for _, k := range slices.Sorted(maps.Keys(s.Data)) {
		v := s.Data[k]
		if !IsEnvName(k) || bytes.IndexByte(v, 0) >= 0 {
			skipped = append(skipped, k)
			continue
		}
		vars = append(vars, EnvVar{Name: k, Value: v})
	}
	return vars, skipped
}

// SkippedMessage words the skipped keys as kubelet's
// InvalidEnvironmentVariableNames event does; ref is "namespace/name".
// Keys with a valid name were skipped for a NUL byte and get a second
// sentence (on its own line). Empty when nothing was skipped.
func SkippedMessage(skipped []string, ref string) string {
	var badName, nul []string
	for _, k := range skipped {
		if IsEnvName(k) {
			nul = append(nul, k)
		} else {
			badName = append(badName, k)
		}
	}
	var lines []string
	if len(badName) > 0 {
		lines = append(lines, fmt.Sprintf("Keys [%s] from the EnvFrom secret %s were skipped since they are considered invalid environment variable names.",
			strings.Join(badName, ", "), ref))
	}
	if len(nul) > 0 {
		lines = append(lines, fmt.Sprintf("Keys [%s] from the EnvFrom secret %s were skipped since their values contain a NUL byte.",
			strings.Join(nul, ", "), ref))
	}
	return strings.Join(lines, "\n")
}

// ShellQuote quotes v for a POSIX shell: single quotes, each ' written as
// '\” so that no byte is special.
func ShellQuote(v []byte) string {
	return "'" + strings.ReplaceAll(string(v), "'", `'\''`) + "'"
}
