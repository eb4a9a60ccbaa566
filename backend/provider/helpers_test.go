package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretfs/secretfs/backend/file"
	"github.com/secretfs/secretfs/backend/provider/providertest"
)

// env is a real provider on a unix socket, a real file source holding
// SecretProviderClasses, and a pool between them.
type env struct {
	t      *testing.T
	socks  string // the provider socket folder
	src    string // the file source folder
	srv    *providertest.Server
	client *Client
	pool   *Pool
}

func newEnv(t *testing.T, opts ClientOptions) *env {
	t.Helper()
	e := &env{t: t, socks: t.TempDir(), src: t.TempDir()}
	e.srv = providertest.Start(t, e.socks, "vault")
	e.writeClass("team-a", "db", "vault", map[string]string{"roleName": "app", "vaultAddress": "http://vault:8200"})
	b, err := file.New(e.src)
	if err != nil {
		t.Fatal(err)
	}
	// A folder without the socket first: the client searches in order.
	opts.Dirs = []string{filepath.Join(e.socks, "none"), e.socks}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	e.client = NewClient(opts)
	t.Cleanup(e.client.Close)
	e.pool = NewPool(e.client, b, nil)
	e.srv.SetFiles(map[string]string{"db-password": "s3cret"}, "v1")
	return e
}

// writeClass puts a SecretProviderClass manifest into the file source.
func (e *env) writeClass(ns, name, provider string, params map[string]string) {
	e.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  provider: %q\n  parameters:\n", name, ns, provider)
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "    %s: %q\n", k, params[k])
	}
	if err := os.WriteFile(filepath.Join(e.src, ns+"-"+name+".yaml"), []byte(b.String()), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// request is what a Pod named pod of service account "app" in team-a asks.
func request(pod string, strategy Strategy, ttl time.Duration) *Request {
	return &Request{
		Namespace: "team-a", Class: "db", ServiceAccount: "app",
		Context: map[string]string{
			"secretProviderClass":                    "db",
			"csi.storage.k8s.io/pod.name":            pod,
			"csi.storage.k8s.io/pod.namespace":       "team-a",
			"csi.storage.k8s.io/pod.uid":             pod + "-uid",
			"csi.storage.k8s.io/serviceAccount.name": "app",
			"csi.storage.k8s.io/ephemeral":           "true",
		},
		Secrets:     map[string]string{tokensKey: `{"vault":{"token":"tok-` + pod + `"}}`},
		Target:      "/var/lib/kubelet/pods/" + pod + "-uid/volumes/kubernetes.io~csi/secrets/mount",
		DefaultMode: 0o644,
		Strategy:    strategy,
		TTL:         ttl,
	}
}

// vol records what one member was given, as a mounted volume would.
type vol struct {
	mu       sync.Mutex
	shown    map[string]string
	changes  int
	outcomes []error // each refresh of the entry after the join
	gotFile  chan struct{}
}

func (v *vol) refreshed(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.outcomes = append(v.outcomes, err)
}

func (v *vol) told() []error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]error(nil), v.outcomes...)
}

func (v *vol) show(f *Files) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.shown = map[string]string{}
	for p, file := range f.files {
		v.shown[p] = fmt.Sprintf("%s:%#o", file.Data, file.Mode)
	}
}

func (v *vol) current() map[string]string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.shown
}

func (e *env) join(req *Request) (*Member, *vol, error) {
	v := &vol{gotFile: make(chan struct{}, 1)}
	m, err := e.pool.Join(context.Background(), req, func(f *Files) error {
		v.show(f)
		return nil
	}, func(f *Files) {
		v.show(f)
		v.mu.Lock()
		v.changes++
		v.mu.Unlock()
		select { // onChange runs under the entry's lock: never block
		case v.gotFile <- struct{}{}:
		default:
		}
	}, v.refreshed)
	return m, v, err
}

func (e *env) mustJoin(req *Request) (*Member, *vol) {
	e.t.Helper()
	m, v, err := e.join(req)
	if err != nil {
		e.t.Fatalf("join %s: %v", req.Target, err)
	}
	e.t.Cleanup(m.Close)
	return m, v
}

// wantErr checks an error's gRPC code and that its message says each of
// the words.
func wantErr(t *testing.T, err error, code codes.Code, words ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v (code %v), want code %v", err, status.Code(err), code)
	}
	for _, w := range words {
		if !strings.Contains(status.Convert(err).Message(), w) {
			t.Errorf("message %q does not say %q", status.Convert(err).Message(), w)
		}
	}
}

func decode(t *testing.T, js string) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatalf("not a JSON map of strings: %v", err)
	}
	return m
}
