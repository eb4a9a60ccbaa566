package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DriverName is secretfs's CSI driver.
const DriverName = "secretfs.csi.dev"

// Plugin is a `secretfs csi` host process registered with the node's kubelet.
type Plugin struct {
	Endpoint string // CSI socket path
	Log      string // its log file
	p        *proc
}

// StartPlugin runs `bin csi` as a host process, the way the DaemonSet runs
// it: CSI socket in KubeletRoot/plugins/<driver>/, registration through its
// own socket in kubelet's plugins_registry (no node-driver-registrar), the
// kube source with an admin kubeconfig (reads with pods' own tokens when the
// CSIDriver asks for tokenRequests). It returns once kubelet has registered
// the driver (the CSINode object lists it). extra is appended to the flags.
func (n *Node) StartPlugin(ctx context.Context, bin string, extra ...string) (*Plugin, error) {
	sockDir := filepath.Join(n.KubeletRoot, "plugins", DriverName)
	if err := os.MkdirAll(sockDir, 0o755); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(n.Dir, "plugin.kubeconfig")
	if err := n.C.WriteKubeconfig(kubeconfig, n.C.AdminToken); err != nil {
		return nil, err
	}
	endpoint := filepath.Join(sockDir, "csi.sock")
	args := append([]string{"csi",
		"--endpoint", "unix://" + endpoint,
		"--node-id", n.Name,
		"--source", "kube",
		"--registration-dir", n.RegistrationDir,
		"--mount-root", n.KubeletRoot,
	}, extra...)
	env := append(os.Environ(), "KUBECONFIG="+kubeconfig)
	t0 := time.Now()
	name := fmt.Sprintf("secretfs-csi-%d", len(n.plugins))
	p, err := spawn(n.Dir, name, env, bin, args...)
	if err != nil {
		return nil, err
	}
	n.plugins = append(n.plugins, p)
	err = n.waitFor(ctx, p, time.Minute, func() error {
		cn, err := n.client.StorageV1().CSINodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, d := range cn.Spec.Drivers {
			if d.Name == DriverName {
				return nil
			}
		}
		return fmt.Errorf("CSINode %s does not list %s yet", n.Name, DriverName)
	})
	if err != nil {
		return nil, err
	}
	n.Timings.PluginRunning = time.Since(t0)
	n.log.Info("plugin registered", "pid", p.PID(), "took", n.Timings.PluginRunning.Round(time.Millisecond))
	return &Plugin{Endpoint: endpoint, Log: p.Log, p: p}, nil
}

// Stop stops the plugin (SIGTERM, then SIGKILL).
func (p *Plugin) Stop() error { return p.p.Stop(10 * time.Second) }

// DefaultCSIDriver is the CSIDriver object the node tests use when deploy/
// has none: attachRequired false, podInfoOnMount, Ephemeral + Persistent,
// requiresRepublish, a token for the API server's audience (the plugin reads
// with the pod's own token), fsGroupPolicy File (the plugin advertises
// VOLUME_MOUNT_GROUP, so kubelet hands fsGroup over instead of chowning).
func DefaultCSIDriver() *storagev1.CSIDriver {
	f, t := false, true
	policy := storagev1.FileFSGroupPolicy
	return &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: DriverName},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       &f,
			PodInfoOnMount:       &t,
			RequiresRepublish:    &t,
			FSGroupPolicy:        &policy,
			TokenRequests:        []storagev1.TokenRequest{{Audience: ""}},
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral, storagev1.VolumeLifecyclePersistent},
		},
	}
}
