package cache

import (
	"fmt"
	"strings"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/metrics"
)

// This file is the entry's identity: the tokens its live volumes brought,
// which one to read with, and what a refusal does.
//
// Invariants: every request an entry sends carries a token of one of its
// live volumes (an open watch stream may outlive its token's volume, until
// its next request); a subscriber that joins an entry none of whose tokens
// is accepted (denied) gets the refusal, never data read before with
// another token.

// errNoVolume is pick's answer when no volume is left to bring a token
// (an idle entry): nothing to report, the entry just stops reading.
var errNoVolume = fmt.Errorf("no volume is left to bring a token: %w", backend.ErrForbidden)

// cred is one token of one volume. dropped is why the entry no longer
// uses it: "refused" (401/403) or "expired"; "" while usable.
type cred struct {
	backend.Token
	dropped string
}

// setTokens replaces s's tokens with toks (none: s leaves). Tokens
// brought by a publish are tried afresh even if the entry dropped the same
// token before: RBAC may have changed since (a Role granted after the Pod
// started), and kubelet keeps handing the same token until it rotates it.
// Under e.mu.
func (e *entry) setTokens(s *Subscription, toks []backend.Token) {
	if e.key.scope == "" {
		return // the backend's own credentials
	}
	if len(toks) == 0 {
		delete(e.tokens, s)
	} else {
		cs := make([]*cred, len(toks))
		for i, t := range toks {
			cs[i] = &cred{Token: t}
		}
		e.tokens[s] = cs
	}
	select {
	case e.rekey <- struct{}{}: // a watch waiting for a token tries again
	default:
	}
}

// holds reports whether a volume still holds token, not dropped. Under e.mu.
func (e *entry) holds(token string) bool {
	for _, cs := range e.tokens {
		for _, c := range cs {
			if c.Value == token && c.dropped == "" {
				return true
			}
		}
	}
	return false
}

// drop marks every copy of token as no longer used. Under e.mu.
func (e *entry) drop(token, why string) {
	for _, cs := range e.tokens {
		for _, c := range cs {
			if c.Value == token {
				c.dropped = why
			}
		}
	}
}

// pick returns the token to read with: the unexpired one that expires
// last ("" for the backend's own credentials). With none left, the entry
// is denied and the error says so. Tokens refused before the entry's last
// success get one more try when nothing else is left: a Role deleted and
// granted again refused every token of the account, not just those.
func (e *entry) pick() (string, error) {
	if e.key.scope == "" {
		return "", nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for retry := e.refusal == nil; ; retry = false {
		if best := e.best(); best != nil {
			return best.Value, nil
		}
		if !retry {
			return "", e.deny()
		}
		for _, cs := range e.tokens {
			for _, c := range cs {
				if c.dropped == "refused" {
					c.dropped = ""
				}
			}
		}
	}
}

// best is the usable token that expires last, dropping expired ones.
// Under e.mu.
func (e *entry) best() *cred {
	now := time.Now()
	var best *cred
	for _, cs := range e.tokens {
		for _, c := range cs {
			switch {
			case c.dropped != "":
			case !c.Expiry.IsZero() && !now.Before(c.Expiry):
				e.drop(c.Value, "expired")
			case best == nil || c.Expiry.After(best.Expiry):
				best = c
			}
		}
	}
	return best
}

// who names the entry's identity for logs and errors.
func (e *entry) who() string {
	if sa, ok := strings.CutPrefix(e.key.scope, "sa:"); ok {
		return "service account " + sa
	}
	return backend.Identity{Tokens: []backend.Token{{}}}.Name()
}

// refuse drops a token the backend refused; it returns whether another
// token may be tried (never for the backend's own credentials). A token
// no volume holds any more (its Pod is gone) is dropped quietly.
func (e *entry) refuse(token string, err error) bool {
	if token == "" {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.holds(token) {
		e.refusal = err
		metrics.AuthFailures.WithLabelValues("token").Inc()
		e.c.log.Warn("a pod token was refused; the entry reads with another token of its volumes if one is left",
			"secret", e.String(), "identity", e.who(), "err", err.Error())
	}
	e.drop(token, "refused")
	return true
}

// deny is reached when no token is left to try. With volumes present
// that is a refusal of the identity: logged and counted once per
// episode, and subscribers joining meanwhile get it instead of data.
// Under e.mu.
func (e *entry) deny() error {
	e.stale = true
	if len(e.tokens) == 0 {
		return errNoVolume
	}
	var err error
	if e.refusal != nil {
		err = fmt.Errorf("no token of %s is accepted: %w", e.who(), e.refusal)
	} else {
		err = fmt.Errorf("secret %s: %w: every token of %s has expired", e, backend.ErrForbidden, e.who())
	}
	if !e.denied {
		e.denied = true
		metrics.AuthFailures.WithLabelValues("denied").Inc()
		e.c.log.Error("no token of the service account is accepted: new volumes of it are refused, live ones keep their last good version",
			"secret", e.String(), "identity", e.who(), "err", err.Error())
		e.logged = err.Error() // apply need not log it again
	}
	return err
}

// accepted is called under e.mu after a read or watch event succeeded.
func (e *entry) accepted() {
	e.stale = false
	e.refusal = nil
	if e.denied {
		e.denied = false
		e.c.log.Info("a token of the service account is accepted again", "secret", e.String(), "identity", e.who())
	}
}
