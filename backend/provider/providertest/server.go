package providertest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// Server is one provider listening on DIR/NAME.sock.
type Server struct {
	v1alpha1.UnimplementedCSIDriverProviderServer

	Socket string
	srv    *grpc.Server
	stop   sync.Once

	mu       sync.Mutex
	reply    *v1alpha1.MountResponse
	err      error
	delay    time.Duration
	requests []*v1alpha1.MountRequest
	versions []*v1alpha1.VersionRequest
	called   chan struct{}
}

// Start serves a provider called name in dir until the test ends.
func Start(t testing.TB, dir, name string) *Server {
	t.Helper()
	s := &Server{Socket: filepath.Join(dir, name+".sock"), reply: &v1alpha1.MountResponse{}, called: make(chan struct{}, 1)}
	ln, err := net.Listen("unix", s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	// The socket is removed by Stop alone: a Serve that starts after Stop
	// closes the listener, and must not unlink a successor's socket.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	s.srv = grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(s.srv, s)
	go s.srv.Serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// Stop ends the server and removes its socket (once).
func (s *Server) Stop() {
	s.stop.Do(func() {
		s.srv.Stop()
		os.Remove(s.Socket)
	})
}

// Version answers as a provider does.
func (s *Server) Version(_ context.Context, req *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions = append(s.versions, proto.Clone(req).(*v1alpha1.VersionRequest))
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: "providertest", RuntimeVersion: "0.0.1"}, nil
}

// Mount records req and answers with the scripted reply or error.
func (s *Server) Mount(ctx context.Context, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	s.mu.Lock()
	s.requests = append(s.requests, proto.Clone(req).(*v1alpha1.MountRequest))
	reply, err, delay := proto.Clone(s.reply).(*v1alpha1.MountResponse), s.err, s.delay
	s.mu.Unlock()
	select {
	case s.called <- struct{}{}:
	default:
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return reply, nil
}

// SetFiles scripts a reply of files (path → content, mode 0644), each
// its own object with the given version.
func (s *Server) SetFiles(files map[string]string, version string) {
	r := &v1alpha1.MountResponse{}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		r.Files = append(r.Files, &v1alpha1.File{Path: p, Mode: 0o644, Contents: []byte(files[p])})
		r.ObjectVersion = append(r.ObjectVersion, &v1alpha1.ObjectVersion{Id: p, Version: version})
	}
	s.SetReply(r)
}

// SetReply scripts the reply of every later Mount.
func (s *Server) SetReply(r *v1alpha1.MountResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply, s.err = proto.Clone(r).(*v1alpha1.MountResponse), nil
}

// SetError makes every later Mount fail with err (a gRPC status).
func (s *Server) SetError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// SetDelay makes every later Mount wait d before it answers.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests returns the Mount requests received so far.
func (s *Server) Requests() []*v1alpha1.MountRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*v1alpha1.MountRequest(nil), s.requests...)
}

// Calls is the number of Mount requests received.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// VersionCalls is the number of Version requests received.
func (s *Server) VersionCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.versions)
}

// Called receives (at most one pending) note per Mount request.
func (s *Server) Called() <-chan struct{} { return s.called }
