package secret

import "fmt"

// InvalidError rejects a Secret (bad name, key, base64, size or type).
// It names the object, where it came from and the offending field, never a
// value, so it is safe to log and to return over gRPC. Callers map it to
// FailedPrecondition with errors.As.
type InvalidError struct {
	Object string // "namespace/name"; empty when the data has no name (nodePublishSecretRef)
	Field  string // e.g. `data key "foo"`, "metadata.name"; may be empty
	Reason string
	Origin string // file path or source name; may be empty
}

func (e *InvalidError) Error() string {
	s := "secret"
	if e.Object != "" {
		s += fmt.Sprintf(" %q", e.Object)
	}
	if e.Origin != "" {
		s += " (" + e.Origin + ")"
	}
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Reason
}

// invalid builds an InvalidError for s; field and reason are formatted by
// the caller and must never include a value.
func invalid(s *Secret, field, reason string) *InvalidError {
	return &InvalidError{Object: objectName(s.Namespace, s.Name), Field: field, Reason: reason, Origin: s.Origin}
}

// objectName is "namespace/name", or "" when there is no name to show.
func objectName(namespace, name string) string {
	if name == "" {
		return ""
	}
	return namespace + "/" + name
}
