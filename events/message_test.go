package events

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secret"
)

// value stands for a secret value, or input a library quoted, inside an
// error's text: no message may carry it.
const value = "hunter2"

// TestFailedMessages: each category of error gives a message naming the
// volume, the Secret (or class) and the reason in our own words; the
// error's text (here quoting a value) never reaches it.
func TestFailedMessages(t *testing.T) {
	quoting := fmt.Errorf("yaml: line 3: found character near %q", value)
	for _, c := range []struct {
		name    string
		subject string
		err     error
		want    []string
	}{
		{"deleted", "Secret app/db", &projection.NotFoundError{Ref: "app/db"},
			[]string{"Secret app/db was deleted"}},
		{"missing key", "Secret app/db", &projection.NotFoundError{Ref: "app/db", Key: "password"},
			[]string{`Secret app/db has no key "password"`, "items"}},
		{"backend not found", "Secret app/db", fmt.Errorf("get %q: %w", value, backend.ErrNotFound),
			[]string{"Secret app/db was deleted"}},
		{"invalid", "Secret app/db", fmt.Errorf("%w: %w", &secret.InvalidError{Object: "app/db", Field: `data key "k"`, Reason: "not valid base64 near " + value}, quoting),
			[]string{`Secret app/db is not valid (data key "k")`}},
		{"invalid static", "the nodePublishSecretRef data", &secret.InvalidError{Field: `key "k" (listed in base64Keys)`, Reason: value},
			[]string{`the nodePublishSecretRef data is not valid (key "k" (listed in base64Keys))`}},
		{"refused", "Secret app/db", fmt.Errorf("no token of service account app/web is accepted: %w: %w", backend.ErrForbidden, quoting),
			[]string{"reading Secret app/db was refused (401/403)"}},
		{"provider", "SecretProviderClass app/vault", fmt.Errorf("refresh: %w", status.Error(codes.Unavailable, "vault sealed: "+value)),
			[]string{"SecretProviderClass app/vault: the refresh failed with code Unavailable"}},
		{"conflict", "the sources", fmt.Errorf("%w", &projection.ConflictError{Path: "tls.key", A: `secret "app/db"`, B: `secret "app/tls"`}),
			[]string{`its sources conflict at path "tls.key" (secret "app/db" and secret "app/tls")`}},
		{"provider source", "one of its sources", errors.Join(&projection.PartError{Part: `secretProviderClass "app/vault"`, Err: status.Error(codes.Unavailable, value)}),
			[]string{`secretProviderClass "app/vault": the refresh failed with code Unavailable`}},
		{"refused source", "one of its sources", errors.Join(nil, &projection.PartError{Part: `secret "app/tls"`, Err: fmt.Errorf("%w: %w", backend.ErrForbidden, quoting)}),
			[]string{`reading secret "app/tls" was refused (401/403)`}},
		{"unreachable", "Secret app/db", quoting,
			[]string{"Secret app/db could not be refreshed", "unreachable"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := failedMessage("creds", c.subject, c.err)
			for _, w := range append(c.want, "volume creds: ", "keeps its last good version") {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, value) || strings.Contains(msg, "yaml:") {
				t.Errorf("message %q carries the error's own text", msg)
			}
		})
	}
}

func TestRecoveredMessage(t *testing.T) {
	if got, want := recoveredMessage("creds", "Secret app/db"), "volume creds: follows Secret app/db again"; got != want {
		t.Errorf("recovered message %q, want %q", got, want)
	}
}

// A long name (a key the items list, an invalid field) is cut, and the
// message stays valid UTF-8 for the API server.
func TestLongNamesCut(t *testing.T) {
	key := "k" + strings.Repeat("é", 200) // the cut falls inside an é
	msg := failedMessage("creds", "Secret app/db", &projection.NotFoundError{Ref: "app/db", Key: key})
	if len(msg) > 250 || !strings.Contains(msg, `..."`) {
		t.Errorf("message of %d bytes for a long key, want it cut: %q", len(msg), msg)
	}
	if !utf8.ValidString(msg) {
		t.Errorf("message is not valid UTF-8: %q", msg)
	}
}
