package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/secretfs/secretfs/sanity/cluster"
	"github.com/secretfs/secretfs/sanity/node"
)

// The shared node: started once by TestMain.
var (
	theNode   *node.Node
	kc        kubernetes.Interface
	plugin    *node.Plugin
	startInfo string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if skip, err := node.Unavailable(); err != nil {
		fmt.Println("e2e:", err)
		return 1
	} else if skip != "" {
		fmt.Println("e2e:", skip)
		return 0
	}
	if testing.Short() && !cluster.Built("etcd", "kube-apiserver", "kubelet") {
		fmt.Println("e2e: skipped: -short and the Kubernetes binaries are not built (sanity/cluster/build.sh)")
		return 0
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	work, err := os.MkdirTemp("", "secretfs-e2e-")
	if err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "secretfs")
	t0 := time.Now()
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/secretfs").CombinedOutput(); err != nil {
		fmt.Printf("e2e: building the plugin: %v\n%s", err, out)
		return 1
	}
	buildTook := time.Since(t0)
	if err := cluster.EnsureBinaries(ctx, "etcd", "kube-apiserver", "kubelet"); err != nil {
		fmt.Println("e2e:", err)
		return 1
	}

	// Cold start: binaries cached, everything else from scratch.
	t0 = time.Now()
	c, err := cluster.StartControlPlane(ctx, "", cluster.Options{Log: log})
	if err != nil {
		fmt.Println("e2e: control plane:", err)
		return 1
	}
	defer c.Stop()
	cpTook := time.Since(t0)
	n, err := node.StartNode(ctx, c, "", node.Options{Log: log})
	if err != nil {
		fmt.Println("e2e: node:", err)
		return 1
	}
	theNode, kc = n, n.Client()
	code := 1
	defer func() {
		if code != 0 || os.Getenv("SECRETFS_E2E_KEEP") != "" {
			n.Keep = true
			fmt.Printf("e2e: node folder kept: %s (kubelet.log, containerd.log, secretfs-csi-0.log, pod-logs/)\n", n.Dir)
		}
		n.Stop()
	}()
	readyTook := time.Since(t0)
	src, err := createCSIDriver(ctx)
	if err != nil {
		fmt.Println("e2e: CSIDriver:", err)
		return 1
	}
	plugin, err = n.StartPlugin(ctx, bin, "--log-level=debug")
	if err != nil {
		fmt.Println("e2e: plugin:", err)
		return 1
	}
	startInfo = fmt.Sprintf("plugin build %v; cold start: control plane %v, node Ready %v after start (containerd %v, images %v, kubelet→Ready %v), plugin registered %v later; CSIDriver from %s",
		buildTook.Round(time.Millisecond), cpTook.Round(time.Millisecond), readyTook.Round(time.Millisecond),
		n.Timings.Containerd.Round(time.Millisecond), n.Timings.Images.Round(time.Millisecond),
		(n.Timings.NodeReady - n.Timings.KubeletStart).Round(time.Millisecond),
		n.Timings.PluginRunning.Round(time.Millisecond), src)
	fmt.Println("e2e:", startInfo)
	code = m.Run()
	return code
}

// createCSIDriver creates the CSIDriver from deploy/ if a manifest there
// holds one, else node.DefaultCSIDriver().
func createCSIDriver(ctx context.Context) (string, error) {
	d, src := deployCSIDriver()
	if d == nil {
		d = node.DefaultCSIDriver()
		src = "the test code (deploy/ has no CSIDriver manifest)"
	}
	_, err := kc.StorageV1().CSIDrivers().Create(ctx, d, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		err = nil
	}
	return src, err
}

// deployCSIDriver finds a CSIDriver named secretfs.csi.dev in ../deploy/*.yaml.
func deployCSIDriver() (*storagev1.CSIDriver, string) {
	files, _ := filepath.Glob("../deploy/*.yaml")
	more, _ := filepath.Glob("../deploy/*.yml")
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, doc := range bytes.Split(b, []byte("\n---")) {
			var meta struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if yaml.Unmarshal(doc, &meta) != nil || meta.Kind != "CSIDriver" || meta.Metadata.Name != node.DriverName {
				continue
			}
			var d storagev1.CSIDriver
			if err := yaml.UnmarshalStrict(doc, &d); err != nil {
				fmt.Printf("e2e: %s: CSIDriver does not decode: %v\n", f, err)
				continue
			}
			return &d, f
		}
	}
	return nil, ""
}
