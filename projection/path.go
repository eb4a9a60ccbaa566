package projection

import (
	"fmt"
	"strings"
)

// Limits of kubelet's atomic writer (validatePath).
const (
	maxPathLength     = 4096
	maxFileNameLength = 255
)

// ValidatePath checks an item path with kubelet's rules: relative, not
// empty, at most 4096 bytes, no ".." element, no element over 255 bytes,
// first element not starting with ".." (that would clash with "..data"
// and the "..<timestamp>" folders). Empty and "." elements are refused too:
// "a//b" or "./a" would name the same file as another spelling.
func ValidatePath(p string) error {
	q := quote(p)
	switch {
	case p == "":
		return fmt.Errorf("path %s: must not be empty", q)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %s: must be relative", q)
	case len(p) > maxPathLength:
		return fmt.Errorf("path %s: %d bytes, more than %d", q, len(p), maxPathLength)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("path %s: must not contain a NUL byte", q)
	}
	elems := strings.Split(p, "/")
	for _, e := range elems {
		switch {
		case e == "..":
			return fmt.Errorf("path %s: must not contain '..'", q)
		case e == "" || e == ".":
			return fmt.Errorf("path %s: must not contain empty or '.' elements", q)
		case len(e) > maxFileNameLength:
			return fmt.Errorf("path %s: element of %d bytes, more than %d", q, len(e), maxFileNameLength)
		}
	}
	if strings.HasPrefix(elems[0], "..") {
		return fmt.Errorf("path %s: must not start with '..'", q)
	}
	return nil
}

// quote is %q of a path, cut short so that a 4 KiB path does not flood
// the one error line users read.
func quote(p string) string {
	const max = 80
	if len(p) > max {
		return fmt.Sprintf("%q...", p[:max])
	}
	return fmt.Sprintf("%q", p)
}
