package provider

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/secretfs/secretfs/metrics"
)

// DefaultDirs are the folders the Secrets Store CSI Driver looks in for
// provider sockets, so its providers are found where they listen.
var DefaultDirs = []string{"/var/run/secrets-store-csi-providers", "/etc/kubernetes/secrets-store-csi-providers"}

const (
	// DefaultMaxRecvBytes bounds a Mount reply, as the driver's
	// --max-call-recv-msg-size default (gRPC's 4 MiB).
	DefaultMaxRecvBytes = 4 << 20
	// DefaultTimeout bounds one Version or Mount call.
	DefaultTimeout = 30 * time.Second
)

// apiVersion is what Version announces: the only provider API there is.
const apiVersion = "v1alpha1"

// nameRE is the driver's check of provider names (it allows an empty
// name; an empty spec.provider is no provider at all, so this check does
// not). It keeps a name from reaching outside the socket folders.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,30}$`)

// CheckName refuses a provider name the driver would refuse.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return errorf(codes.InvalidArgument, "provider name %q: must match ^[a-zA-Z0-9_-]{1,30}$", truncate(name))
	}
	return nil
}

// ClientOptions configure the connections to providers.
type ClientOptions struct {
	Dirs         []string      // socket folders, searched in order (default DefaultDirs)
	MaxRecvBytes int           // largest Mount reply (default DefaultMaxRecvBytes)
	Timeout      time.Duration // per call (default DefaultTimeout)
	Logger       *slog.Logger
}

// Client holds one gRPC connection per provider, made on first use.
type Client struct {
	opts  ClientOptions
	mu    sync.Mutex
	conns map[string]*conn
}

// conn is one connection; Version is called once on it before the first
// Mount (the driver's handshake), and again only on a new connection.
type conn struct {
	cc        *grpc.ClientConn
	api       v1alpha1.CSIDriverProviderClient
	handshake sync.Mutex
	versioned bool
}

// NewClient returns a client; connections are made when first needed.
func NewClient(opts ClientOptions) *Client {
	if len(opts.Dirs) == 0 {
		opts.Dirs = DefaultDirs
	}
	if opts.MaxRecvBytes <= 0 {
		opts.MaxRecvBytes = DefaultMaxRecvBytes
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Client{opts: opts, conns: map[string]*conn{}}
}

// Mount sends req to provider and returns its reply. Errors are *Error:
// Unavailable (no socket, unreachable, any gRPC error of the provider,
// no answer in time) or ResourceExhausted (reply over MaxRecvBytes).
func (c *Client) Mount(ctx context.Context, provider string, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	if err := CheckName(provider); err != nil {
		return nil, err
	}
	start := time.Now()
	resp, err := c.mount(ctx, provider, req)
	metrics.ProviderSeconds.WithLabelValues(provider).Observe(time.Since(start).Seconds())
	return resp, err
}

func (c *Client) mount(ctx context.Context, provider string, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	cn, err := c.conn(provider)
	if err != nil {
		return nil, err
	}
	if err := c.version(ctx, provider, cn); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	resp, err := cn.api.Mount(cctx, req)
	if err != nil {
		return nil, c.callError(provider, cn, "Mount", err)
	}
	return resp, nil
}

// version makes the Version handshake once per connection.
func (c *Client) version(ctx context.Context, provider string, cn *conn) error {
	cn.handshake.Lock()
	defer cn.handshake.Unlock()
	if cn.versioned {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	v, err := cn.api.Version(cctx, &v1alpha1.VersionRequest{Version: apiVersion})
	if status.Code(err) == codes.Unimplemented {
		// The driver itself mounts without asking Version first: a
		// provider that lacks it still works.
		c.opts.Logger.Warn("provider does not implement Version", "provider", provider)
		cn.versioned = true
		return nil
	}
	if err != nil {
		return c.callError(provider, cn, "Version", err)
	}
	cn.versioned = true
	c.opts.Logger.Info("provider connected", "provider", provider,
		"runtime", truncate(v.GetRuntimeName()), "runtimeVersion", truncate(v.GetRuntimeVersion()))
	return nil
}

// conn returns provider's connection, dialling the first socket found.
func (c *Client) conn(provider string) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cn, ok := c.conns[provider]; ok {
		return cn, nil
	}
	socket := ""
	for _, d := range c.opts.Dirs {
		p := filepath.Join(d, provider+".sock")
		if _, err := os.Stat(p); err == nil {
			socket = p
			break
		}
	}
	if socket == "" {
		return nil, errorf(codes.Unavailable, "provider %q: no socket %s.sock in %s", provider, provider, strings.Join(c.opts.Dirs, ", "))
	}
	cc, err := grpc.NewClient("unix:"+socket,
		grpc.WithAuthority("localhost"),                          // as the driver: a unix socket has no host name
		grpc.WithTransportCredentials(insecure.NewCredentials()), // the socket's permissions are the security
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.opts.MaxRecvBytes)),
	)
	if err != nil {
		return nil, errorf(codes.Unavailable, "provider %q: cannot connect to %s", provider, socket)
	}
	cn := &conn{cc: cc, api: v1alpha1.NewCSIDriverProviderClient(cc)}
	c.conns[provider] = cn
	return cn, nil
}

// callError maps a failed call. The provider's own message is left out:
// it may quote the attributes (tokens) it was sent. A connection that
// failed is dropped, so the next call looks for the socket again and
// makes a new handshake.
func (c *Client) callError(provider string, cn *conn, method string, err error) *Error {
	st, _ := status.FromError(err)
	code := st.Code()
	if code == codes.ResourceExhausted && strings.Contains(st.Message(), "received message larger than max") {
		return errorf(codes.ResourceExhausted, "provider %q: %s reply larger than %d bytes (--provider-max-recv-bytes)", provider, method, c.opts.MaxRecvBytes)
	}
	if code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.Canceled {
		c.drop(provider, cn)
	}
	if code == codes.DeadlineExceeded {
		return errorf(codes.Unavailable, "provider %q: no %s reply within %s", provider, method, c.opts.Timeout)
	}
	return errorf(codes.Unavailable, "provider %q: %s failed with code %s", provider, method, code)
}

func (c *Client) drop(provider string, cn *conn) {
	c.mu.Lock()
	if c.conns[provider] == cn {
		delete(c.conns, provider)
	}
	c.mu.Unlock()
	cn.cc.Close()
}

// Close closes every connection.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, cn := range c.conns {
		cn.cc.Close()
		delete(c.conns, p)
	}
}

// truncate shortens text from outside for a message or a log.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
