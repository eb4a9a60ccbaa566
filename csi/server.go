package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/secretfs/secretfs/metrics"
)

// ServerOptions say where to serve.
type ServerOptions struct {
	// Endpoint is the CSI socket: "unix:///path/csi.sock" or a path.
	Endpoint string
	// RegistrationDir, if set, is kubelet's plugins_registry: the plugin
	// registers itself there (no node-driver-registrar sidecar).
	RegistrationDir string
	// RegistrationEndpoint is the CSI socket path as kubelet sees it;
	// default the Endpoint's path (the DaemonSet mounts it at the same
	// path as on the host).
	RegistrationEndpoint string
	Logger               *slog.Logger
}

// Server serves a Driver over gRPC on a unix socket.
type Server struct {
	d    *Driver
	opts ServerOptions
	log  *slog.Logger
	seq  atomic.Uint64
}

func NewServer(d *Driver, opts ServerOptions) *Server {
	if opts.Logger == nil {
		opts.Logger = d.log
	}
	return &Server{d: d, opts: opts, log: opts.Logger}
}

// SocketPath turns an endpoint into a socket path.
func SocketPath(endpoint string) (string, error) {
	p := endpoint
	if rest, ok := strings.CutPrefix(endpoint, "unix://"); ok {
		p = rest
	} else if rest, ok := strings.CutPrefix(endpoint, "unix:"); ok {
		p = rest
	} else if strings.Contains(endpoint, "://") {
		return "", fmt.Errorf("endpoint %q: only unix sockets are served", endpoint)
	}
	if p == "" {
		return "", fmt.Errorf("endpoint %q: no socket path", endpoint)
	}
	return filepath.Abs(p)
}

// Run serves until ctx is done, then stops (in-flight calls get a few
// seconds) and removes its sockets. Mounts stay: the next process finds
// and cleans them if nothing keeps them alive (Driver.CleanupStale).
func (s *Server) Run(ctx context.Context) error {
	path, err := SocketPath(s.opts.Endpoint)
	if err != nil {
		return err
	}
	ln, err := listenUnix(path)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	g := grpc.NewServer(grpc.UnaryInterceptor(s.intercept))
	csi.RegisterIdentityServer(g, s.d)
	csi.RegisterControllerServer(g, s.d)
	csi.RegisterNodeServer(g, s.d)

	errc := make(chan error, 2)
	go func() { errc <- g.Serve(ln) }()
	servers := []*grpc.Server{g}
	if s.opts.RegistrationDir != "" {
		ep := s.opts.RegistrationEndpoint
		if ep == "" {
			ep = path
		}
		rg, regPath, err := s.serveRegistration(ep, errc)
		if err != nil {
			g.Stop()
			return err
		}
		defer os.Remove(regPath)
		servers = append(servers, rg)
	}
	s.log.Info("CSI plugin serving", "driver", s.d.cfg.Name, "endpoint", path, "node", s.d.cfg.NodeID, "registration", s.opts.RegistrationDir)

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, g := range servers {
		stopGracefully(g, 5*time.Second)
	}
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func stopGracefully(g *grpc.Server, wait time.Duration) {
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		g.Stop()
	}
}

// listenUnix listens on path with mode 0600 (only root, i.e. kubelet, may
// call), replacing a stale socket but never a live one.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("socket folder: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another process serves this socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket mode: %w", err)
	}
	return ln, nil
}

// intercept logs every call with its secrets (and the pod's token)
// stripped, and measures publishes.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	level := slog.LevelDebug // kubelet probes and asks capabilities often
	switch method {
	case "NodePublishVolume", "NodeUnpublishVolume", "CreateVolume", "DeleteVolume":
		level = slog.LevelInfo
	}
	log := s.log.With("method", method, "call", s.seq.Add(1))
	if log.Enabled(ctx, level) {
		log.Log(ctx, level, "gRPC call", "request", sanitize(req))
	}
	resp, err := handler(ctx, req)
	code := status.Code(err)
	elapsed := time.Since(start)
	switch method {
	case "NodePublishVolume":
		metrics.Publishes.WithLabelValues(code.String()).Inc()
		metrics.PublishSeconds.Observe(elapsed.Seconds())
	case "NodeUnpublishVolume":
		metrics.Unpublishes.WithLabelValues(code.String()).Inc()
	}
	if err != nil {
		msg := status.Convert(err).Message()
		if len(msg) > maxLoggedError {
			msg = cut(msg, maxLoggedError)
		}
		log.Warn("gRPC call failed", "code", code.String(), "err", msg, "seconds", elapsed.Seconds())
	} else {
		log.Log(ctx, level, "gRPC call done", "seconds", elapsed.Seconds())
	}
	return resp, err
}

// maxLoggedValue bounds each string (and map key) the request log
// shows, maxLoggedError the message of a failed call.
// maxLoggedMap the entries of one map shown (keys and cut values; the
// rest are counted), maxLoggedRequest the whole request: no caller can
// make one log line large, however many keys, parameters or list
// entries it sends (CreateVolume parameters have no size limit but
// gRPC's).
const (
	maxLoggedValue   = 256
	maxLoggedError   = 1024
	maxLoggedMap     = 4 << 10
	maxLoggedRequest = 16 << 10
)

// sanitize renders a request for the log: protosanitizer drops the fields
// CSI marks secret (`secrets`); the pod's service account token travels
// in volume_context, which CSI does not mark, so it is blanked here; every
// other string is cut at maxLoggedValue bytes, and a volume_context over
// its limit is not shown at all (only its size), so no caller can make
// one log line large.
func sanitize(req any) string {
	m, ok := req.(proto.Message)
	if !ok {
		return fmt.Sprintf("%T", req)
	}
	m = proto.Clone(m)
	if r, ok := m.(*csi.NodePublishVolumeRequest); ok {
		if n := contextSize(r.VolumeContext); n > maxVolumeContext {
			r.VolumeContext = map[string]string{"(not shown)": fmt.Sprintf("%d bytes in %d keys", n, len(r.VolumeContext))}
		}
	}
	shorten(m.ProtoReflect())
	out := protosanitizer.StripSecrets(m).String()
	if len(out) > maxLoggedRequest {
		out = cut(out, maxLoggedRequest)
	}
	return out
}

// shorten cuts every string and bytes field of m, in maps and lists and
// nested messages too, to maxLoggedValue, and blanks the token key.
func shorten(m protoreflect.Message) {
	var fields []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		fields = append(fields, fd)
		return true
	})
	for _, fd := range fields {
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			shortenMap(v.Map(), fd.MapValue())
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if nv, ok := shortValue(l.Get(i), fd); ok {
					l.Set(i, nv)
				}
			}
		default:
			if nv, ok := shortValue(v, fd); ok {
				m.Set(fd, nv)
			}
		}
	}
}

func shortenMap(mp protoreflect.Map, vd protoreflect.FieldDescriptor) {
	type entry struct {
		k protoreflect.MapKey
		v protoreflect.Value
	}
	var entries []entry
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		entries = append(entries, entry{k, v})
		return true
	})
	// In key order, so that which entries are shown does not depend on
	// the map's.
	sort.Slice(entries, func(i, j int) bool { return entries[i].k.String() < entries[j].k.String() })
	shown, hidden, hiddenBytes := 0, 0, 0
	for _, e := range entries {
		v := e.v
		if shown > maxLoggedMap && vd.Kind() == protoreflect.StringKind {
			hidden++
			hiddenBytes += len(e.k.String()) + len(v.String())
			mp.Clear(e.k)
			continue
		}
		shown += min(len(e.k.String()), maxLoggedValue) + min(len(v.String()), maxLoggedValue)
		if ks, ok := e.k.Interface().(string); ok {
			if ks == tokensKey && vd.Kind() == protoreflect.StringKind {
				v = protoreflect.ValueOfString("***stripped***")
			}
			if len(ks) > maxLoggedValue {
				mp.Clear(e.k)
				e.k = protoreflect.ValueOfString(cut(ks, maxLoggedValue)).MapKey()
			}
		}
		if nv, ok := shortValue(v, vd); ok {
			v = nv
		}
		mp.Set(e.k, v)
	}
	if hidden > 0 && vd.Kind() == protoreflect.StringKind {
		mp.Set(protoreflect.ValueOfString("(not shown)").MapKey(), protoreflect.ValueOfString(fmt.Sprintf("%d more keys, %d bytes", hidden, hiddenBytes)))
	}
}

// shortValue returns v cut (strings, bytes) or shortened in place
// (messages); ok says there is a new value to set.
func shortValue(v protoreflect.Value, fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if s := v.String(); len(s) > maxLoggedValue {
			return protoreflect.ValueOfString(cut(s, maxLoggedValue)), true
		}
	case protoreflect.BytesKind:
		if b := v.Bytes(); len(b) > maxLoggedValue {
			return protoreflect.ValueOfBytes(b[:maxLoggedValue]), true
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		shorten(v.Message())
	}
	return v, false
}

// cut keeps the first max bytes of s, backing off to a rune boundary (a
// proto string must stay UTF-8), and says how long s was.
func cut(s string, max int) string {
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:n], len(s))
}
