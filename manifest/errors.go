package manifest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Error is a strictness error in an otherwise readable document. Path is
// the key path from the decoded root (`data.password`, `[0].mode`, "" for
// the root itself); Reason is fixed text of this package. Neither holds a
// value of the input.
type Error struct {
	Path   string
	Line   int
	Reason string
}

func (e *Error) Error() string {
	s := e.Reason
	if e.Path != "" {
		s = e.Path + ": " + s
	}
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d)", e.Line)
	}
	return s
}

// SyntaxError is text that is not YAML at all. The parser's own message is
// dropped: only the line it gives is kept (the problem text of a YAML
// parser is fixed today, but an error that quoted the input would leak it,
// and a line is enough to find the problem).
type SyntaxError struct {
	Doc  int // 1-based document of a stream; 0 when unknown
	Line int // 0 when the parser gave none
}

func (e *SyntaxError) Error() string {
	s := "invalid YAML syntax"
	if e.Line > 0 {
		s += fmt.Sprintf(" at line %d", e.Line)
	}
	return s
}

var yamlLine = regexp.MustCompile(`^yaml: line ([0-9]+):`)

// syntaxError turns a parser error into a *SyntaxError, keeping only the
// line number from its text.
func syntaxError(err error, doc int) *SyntaxError {
	se := &SyntaxError{Doc: doc}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		se.Line, _ = strconv.Atoi(m[1])
	}
	return se
}

// maxPathKey bounds how much of one key a path shows: keys are names, not
// values, but a 64 KiB key must not flood the one line users read.
const maxPathKey = 64

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// child is the path of key inside the map at path: `a.b`, or `a["tls.crt"]`
// when the key would not read plainly.
func child(path, key string) string {
	if len(key) > maxPathKey {
		return fmt.Sprintf("%s[%q...]", path, key[:maxPathKey])
	}
	if plainKey.MatchString(key) {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	return fmt.Sprintf("%s[%q]", path, key)
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// describe names what a node is, for reasons such as "value is a !!int":
// only the standard tags are named, a custom one could be made of input.
func describe(tag string) string {
	if strings.HasPrefix(tag, "!!") && len(tag) <= len("!!timestamp") {
		switch tag {
		case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!binary",
			"!!map", "!!seq", "!!set", "!!omap", "!!pairs", "!!merge":
			return tag
		}
	}
	return "a custom tag"
}
