package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// auditPolicy logs every request at Metadata level (who, verb, object; no
// bodies) so tests can count e.g. watches and gets of secrets per user.
// The apiserver's own loopback client and health probes are dropped: they are
// noise for such counts. RequestReceived is omitted, so a request yields one
// ResponseComplete event, or for watches a ResponseStarted (at open) plus a
// ResponseComplete (at close); AuditEvents folds these by audit ID.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["system:apiserver"]
- level: None
  nonResourceURLs: ["/readyz*", "/livez*", "/healthz*"]
- level: Metadata
`

// AuditEvent is one API request as seen by the audit log (audit.k8s.io/v1
// Event, Metadata level, reduced to what tests count by).
type AuditEvent struct {
	AuditID     string
	Stage       string // last stage seen: ResponseStarted (open watch) or ResponseComplete
	Verb        string // get, list, watch, create, update, patch, delete, …
	User        string
	Groups      []string
	UserAgent   string
	Resource    string // e.g. "secrets"; empty for non-resource URLs
	Subresource string
	Namespace   string
	Name        string
	RequestURI  string
	Code        int // HTTP status; 0 while a watch is still open
	Time        time.Time
}

// rawAuditEvent mirrors the JSON of audit.k8s.io/v1 Event; declared here to
// avoid depending on k8s.io/apiserver just for the type.
type rawAuditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	UserAgent string `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
}

// AuditEvents parses the audit log: one event per request, in log order.
// The log survives apiserver restarts (the apiserver appends to it).
func (c *Cluster) AuditEvents() ([]AuditEvent, error) {
	f, err := os.Open(c.AuditLog)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []AuditEvent
	index := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r rawAuditEvent
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("audit log %s: %w", c.AuditLog, err)
		}
		e := AuditEvent{AuditID: r.AuditID, Stage: r.Stage, Verb: r.Verb, User: r.User.Username,
			Groups: r.User.Groups, UserAgent: r.UserAgent, RequestURI: r.RequestURI, Time: r.RequestReceivedTimestamp}
		if o := r.ObjectRef; o != nil {
			e.Resource, e.Subresource, e.Namespace, e.Name = o.Resource, o.Subresource, o.Namespace, o.Name
		}
		if r.ResponseStatus != nil {
			e.Code = r.ResponseStatus.Code
		}
		if i, ok := index[e.AuditID]; ok {
			out[i] = e // a watch's ResponseComplete replaces its ResponseStarted
			continue
		}
		index[e.AuditID] = len(out)
		out = append(out, e)
	}
	return out, sc.Err()
}

// CountAudit counts requests matching m; an empty field in m matches anything.
func (c *Cluster) CountAudit(m AuditEvent) (int, error) {
	evs, err := c.AuditEvents()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range evs {
		if match(m.Verb, e.Verb) && match(m.User, e.User) && match(m.Resource, e.Resource) &&
			match(m.Namespace, e.Namespace) && match(m.Name, e.Name) {
			n++
		}
	}
	return n, nil
}

func match(want, got string) bool { return want == "" || want == got }

// WaitAudit polls until at least n requests match m. The apiserver writes an
// event once the response is done, which can be just after the client saw it.
func (c *Cluster) WaitAudit(ctx context.Context, m AuditEvent, n int) (int, error) {
	for {
		got, err := c.CountAudit(m)
		if err != nil || got >= n {
			return got, err
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("audit: %d of %d requests matching %+v: %w", got, n, m, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
