package csi

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// registration serves kubelet's plugin-registration API, the job of the
// node-driver-registrar sidecar: kubelet watches plugins_registry, calls
// GetInfo on each new socket and then talks CSI to the endpoint given.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	s        *Server
	endpoint string
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.s.d.cfg.Name,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if st.GetPluginRegistered() {
		r.s.log.Info("registered with kubelet", "driver", r.s.d.cfg.Name)
	} else {
		r.s.log.Error("kubelet refused the registration", "driver", r.s.d.cfg.Name, "err", st.GetError())
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// RegistrationSocket is where the plugin registers in dir.
func RegistrationSocket(dir, driver string) string {
	return filepath.Join(dir, driver+"-reg.sock")
}

// serveRegistration starts the registration server; its end is reported
// on errc. kubelet notices the socket by its creation (fsnotify), so it
// is made only once the CSI socket serves.
func (s *Server) serveRegistration(endpoint string, errc chan<- error) (*grpc.Server, string, error) {
	path := RegistrationSocket(s.opts.RegistrationDir, s.d.cfg.Name)
	ln, err := listenUnix(path)
	if err != nil {
		return nil, "", fmt.Errorf("registration socket: %w", err)
	}
	g := grpc.NewServer()
	registerapi.RegisterRegistrationServer(g, &registration{s: s, endpoint: endpoint})
	go func() { errc <- g.Serve(ln) }()
	return g, path, nil
}
