package deploy

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/secretfs/secretfs/sanity/cluster"
	"github.com/secretfs/secretfs/sanity/node"
)

// Manifests lists every YAML manifest under dir (recursively), sorted;
// the chart's folder holds templates and values, not manifests.
func manifests(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p == filepath.Join(dir, "chart") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// namespaces returns the metadata.namespace of every document in files.
func namespaces(t *testing.T, files []string) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(b, []byte("\n---")) {
			var m struct {
				Metadata struct {
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal(doc, &m); err != nil {
				t.Errorf("%s: not YAML: %v", f, err)
				continue
			}
			if ns := m.Metadata.Namespace; ns != "" {
				seen[ns] = true
			}
		}
	}
	var out []string
	for ns := range seen {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// TestManifestsServerDryRun: every manifest under deploy/ (the chart
// rendered with default values, and the examples), and the chart rendered
// with each ci/*-values.yaml, passes `kubectl apply --dry-run=server`
// (strict field validation, admission, the apiserver's own validation)
// against a real kube-apiserver v1.37.2, without a single warning.
func TestManifestsServerDryRun(t *testing.T) {
	files := manifests(t, ".")
	if len(files) == 0 {
		t.Fatal("no manifests under deploy/")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if !cluster.Built("kubectl") && testing.Short() {
		t.Skip("-short: kubectl not built; run sanity/cluster/build.sh first")
	}
	// The chart with every other value set, one folder of files each.
	sets := map[string][]string{"deploy": files}
	for _, v := range valueSets(t)[1:] {
		dir := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(v), ".yaml"))
		run(t, "bash", "chart.sh", "render", dir, "secretfs", chartDir, "--namespace", "secretfs", "--values", v)
		sets[v] = withoutOperatorKinds(t, manifests(t, dir))
	}
	c := cluster.Start(t)
	if err := cluster.EnsureBinaries(ctx, "kubectl"); err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(cluster.BinDir(), "kubectl")
	// The plugin's DaemonSet is privileged (FUSE mounts, Bidirectional
	// propagation), which kube-apiserver refuses unless started with
	// --allow-privileged=true, as every real cluster (kubeadm, kind, the
	// clouds) is. The bare harness is not: add the flag.
	api, err := node.WithAPIServerFlags(ctx, c, "--allow-privileged=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Restore(context.Background()) })
	// A dry run persists nothing: a namespace created by one manifest
	// (rbac.yaml) does not exist for the next. Create them for real (with
	// kubectl's last-applied annotation, so that applying the Namespace
	// manifest over it warns of nothing), and each one's "default"
	// ServiceAccount, which the ServiceAccount admission plugin wants for
	// Pods and no controller-manager creates here.
	var all []string
	for _, fs := range sets {
		all = append(all, fs...)
	}
	for _, ns := range namespaces(t, all) {
		if ns != "default" {
			out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubeconfig,
				"create", "namespace", ns, "--save-config").CombinedOutput()
			if err != nil && !strings.Contains(string(out), "AlreadyExists") {
				t.Fatalf("kubectl create namespace %s: %v: %s", ns, err, out)
			}
		}
		no := false
		_, err := c.Client().CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
			ObjectMeta: metav1.ObjectMeta{Name: "default"}, AutomountServiceAccountToken: &no}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	// The SecretProviderClass CRD for real, so that SecretProviderClass
	// manifests (examples) are checked against its schema.
	crd := "secretproviderclass-crd.yaml"
	for _, args := range [][]string{{"apply", "-f", crd},
		{"wait", "--for", "condition=Established", "--timeout", "60s", "-f", crd}} {
		out, err := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, set := range slices.Sorted(maps.Keys(sets)) {
		t.Run(set, func(t *testing.T) { dryRun(t, ctx, kubectl, c.Kubeconfig, sets[set]) })
	}
}

// withoutOperatorKinds leaves out the files of Prometheus Operator kinds
// (ServiceMonitor, PrometheusRule): the bare apiserver has no CRD for them
// and the operator's module ships none; monitoring_test.go decodes them
// strictly with the operator's own Go types instead, and loads the rules
// as Prometheus does.
func withoutOperatorKinds(t *testing.T, files []string) []string {
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("\napiVersion: monitoring.coreos.com/")) {
			t.Logf("%s: a Prometheus Operator kind, not dry-run (no CRD here)", filepath.Base(f))
			continue
		}
		out = append(out, f)
	}
	return out
}

// dryRun applies each file with `kubectl apply --dry-run=server
// --validate=strict`: no error, no warning.
func dryRun(t *testing.T, ctx context.Context, kubectl, kubeconfig string, files []string) {
	for _, f := range files {
		name := f // deploy/'s own files by path, rendered ones by name
		if filepath.IsAbs(f) {
			name = filepath.Base(f)
		}
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig,
				"apply", "--dry-run=server", "--validate=strict", "-f", f)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			t.Logf("%s", strings.TrimSpace(stdout.String()))
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server -f %s: %v\n%s", f, err, stderr.String())
			}
			if s := strings.TrimSpace(stderr.String()); s != "" {
				// kubectl prints the apiserver's warnings ("Warning: ...") here.
				t.Errorf("kubectl apply --dry-run=server -f %s: warnings or errors:\n%s", f, s)
			}
			if !strings.Contains(stdout.String(), "(server dry run)") {
				t.Errorf("no server dry run reported: %s", stdout.String())
			}
		})
	}
}
