package events

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/status"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secret"
)

// maxName bounds a key or field named in a message; names beyond it are
// cut (events are read by people, and the API server bounds them).
const maxName = 100

// failedMessage is a Warning's text: the volume, what it shows and why
// its refresh failed. The reason is the error's category, written here;
// never the error's own text, which may quote a library's input.
func failedMessage(volume, subject string, err error) string {
	return fmt.Sprintf("volume %s: %s; the volume keeps its last good version", volume, why(subject, err))
}

// recoveredMessage is the Normal event's text after failures.
func recoveredMessage(volume, subject string) string {
	return fmt.Sprintf("volume %s: follows %s again", volume, subject)
}

// why names what failed by the error's category. Errors of our own types
// name the very Secret (one of several, in a volume of several).
func why(subject string, err error) string {
	var missing *projection.NotFoundError
	var invalid *secret.InvalidError
	var conflict *projection.ConflictError
	var part *projection.PartError
	switch {
	case errors.As(err, &part) && !errors.As(err, &conflict):
		return why(part.Part, part.Err) // one source of several, named
	case errors.As(err, &conflict):
		return fmt.Sprintf("its sources conflict at path %q (%s and %s)", clip(conflict.Path), conflict.A, conflict.B)
	case errors.As(err, &missing) && missing.Key != "":
		return fmt.Sprintf("Secret %s has no key %q, which the volume's items name", missing.Ref, clip(missing.Key))
	case errors.As(err, &missing):
		return fmt.Sprintf("Secret %s was deleted (or is missing)", missing.Ref)
	case errors.Is(err, backend.ErrNotFound):
		return subject + " was deleted (or is missing)"
	case errors.As(err, &invalid):
		what := subject
		if invalid.Object != "" {
			what = "Secret " + invalid.Object
		}
		if invalid.Field != "" {
			return fmt.Sprintf("%s is not valid (%s)", what, clip(invalid.Field))
		}
		return what + " is not valid"
	case errors.Is(err, backend.ErrForbidden):
		return "reading " + subject + " was refused (401/403): the Pod's service account may not read it, or its token is no longer accepted"
	}
	// A provider's errors carry their gRPC code; their text is left out.
	if st, ok := status.FromError(err); ok && err != nil {
		return fmt.Sprintf("%s: the refresh failed with code %s", subject, st.Code())
	}
	return subject + " could not be refreshed (its source is unreachable or failed; the plugin's log says more)"
}

// clip cuts s to maxName bytes, leaving valid UTF-8.
func clip(s string) string {
	if len(s) <= maxName {
		return s
	}
	return strings.ToValidUTF8(s[:maxName], "") + "..."
}
