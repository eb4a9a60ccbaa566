package kube

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/secretfs/secretfs/backend"
)

// Origin is secret.Secret.Origin for Secrets read from the API.
const Origin = "kube"

// Options tune a Backend; the zero value is fine.
type Options struct {
	Log *slog.Logger
	// TokenClients bounds the cache of per-token clientsets (default 64).
	TokenClients int
	// WatchTimeout is how long one watch request lasts before it is
	// resumed from its last resourceVersion; default a random 5–10 min,
	// as client-go's reflector does, so watches don't expire together.
	WatchTimeout time.Duration
}

// Backend reads Secrets with its own credentials or a caller's token.
type Backend struct {
	base   *rest.Config // credentials stripped: the template for token clients
	own    kubernetes.Interface
	tokens *lru.Cache[[sha256.Size]byte, kubernetes.Interface]
	opts   Options
	log    *slog.Logger
}

var (
	_ backend.Backend = (*Backend)(nil)
	_ backend.Owner   = (*Backend)(nil)
)

// CallerOwnsSecrets reports true (backend.Owner): every Get and watch
// event decodes a fresh object, and nothing here keeps it.
func (b *Backend) CallerOwnsSecrets() bool { return true }

// Defaults for rate limiting: kubelet's QPS (kubeAPIQPS 50) and a burst
// that covers the list+watch of 100 Secrets at once (a node full of pods
// starting); client-go's own 5/10 would queue those for 40 s.
const (
	defaultQPS   = 50
	defaultBurst = 200
)

// New makes a Backend from cfg (not modified).
func New(cfg *rest.Config, opts Options) (*Backend, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS = defaultQPS
	}
	if cfg.Burst == 0 {
		cfg.Burst = defaultBurst
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "secretfs"
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.TokenClients <= 0 {
		opts.TokenClients = 64
	}
	own, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube client: %w", err)
	}
	tokens, err := lru.New[[sha256.Size]byte, kubernetes.Interface](opts.TokenClients)
	if err != nil {
		return nil, fmt.Errorf("kube client cache: %w", err)
	}
	return &Backend{base: rest.AnonymousClientConfig(cfg), own: own, tokens: tokens,
		opts: opts, log: opts.Log.With("backend", "kube")}, nil
}

// LoadConfig finds the client configuration the usual way: the given
// kubeconfig file, else $KUBECONFIG, else ~/.kube/config, else the
// in-cluster service account.
func LoadConfig(kubeconfigPath string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfigPath
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube config: %w", err)
	}
	return cfg, nil
}

// client returns the clientset for ref: ours, or one that sends only
// ref.Token. Clientsets are cached by a hash of the token so a steady
// stream of publishes doesn't build one per request, and the token itself
// is never kept as a map key. Their HTTP transports are shared anyway
// (client-go caches them by TLS config), so all use one connection.
func (b *Backend) client(ref backend.Ref) (kubernetes.Interface, error) {
	if ref.Token == "" {
		return b.own, nil
	}
	key := sha256.Sum256([]byte(ref.Token))
	if c, ok := b.tokens.Get(key); ok {
		return c, nil
	}
	cfg := rest.CopyConfig(b.base)
	cfg.BearerToken = ref.Token
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube client for token: %w", err)
	}
	b.tokens.Add(key, c)
	return c, nil
}
