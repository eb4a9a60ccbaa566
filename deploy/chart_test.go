package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

const chartDir = "chart/secretfs"

// helm returns the helm binary, building it on first use (deploy/build-helm.sh,
// ~2 min cold); -short skips instead when it is not built yet.
func helm(t *testing.T) string {
	t.Helper()
	if testing.Short() && exec.Command("bash", "build-helm.sh", "--built").Run() != nil {
		t.Skip("-short: helm not built; run deploy/build-helm.sh (make helm) first")
	}
	return strings.TrimSpace(run(t, "bash", "build-helm.sh"))
}

// run runs a command in deploy/ and returns its stdout; it fails the test
// with stderr if the command fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// valueSets are the values files the chart is checked with: "" (the
// defaults) and every ci/*-values.yaml.
func valueSets(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s/ci/*-values.yaml (%v)", chartDir, err)
	}
	return append([]string{""}, files...)
}

func valuesArgs(values string) []string {
	if values == "" {
		return nil
	}
	return []string{"--values", values}
}

func setName(values string) string {
	if values == "" {
		return "defaults"
	}
	return filepath.Base(values)
}

// TestChartLint: `helm lint --strict` (warnings are errors; values checked
// against values.schema.json) passes with every value set.
func TestChartLint(t *testing.T) {
	h := helm(t)
	for _, v := range valueSets(t) {
		t.Run(setName(v), func(t *testing.T) {
			out := run(t, h, append([]string{"lint", "--strict", chartDir}, valuesArgs(v)...)...)
			if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") || strings.Contains(out, "[WARNING]") {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}

// TestChartSchemaRefusesTypos: a misspelt or invalid value is an error of
// helm itself, naming it, not a value silently ignored.
func TestChartSchemaRefusesTypos(t *testing.T) {
	h := helm(t)
	for set, want := range map[string]string{
		"keeper.enable=false":                                  "additional properties 'enable' not allowed",
		"logLevel=verbose":                                     "/logLevel",
		"source.type=file":                                     "source.hostPath is required",
		"providers.dirs[0]=relative":                           "/providers/dirs/0",
		"cacheIdle=1 minute":                                   "/cacheIdle",
		"metrics.port=0":                                       "/metrics/port",
		"extraArgs[0]=positional":                              "/extraArgs/0",
		"image.pullPolicy=Sometimes":                           "/image/pullPolicy",
		"kubeletDir=var/lib/kubelet":                           "/kubeletDir",
		"keeper.socketDir=run/secretf":                         "/keeper/socketDir",
		"monitoring.serviceMonitor.enable=true":                "additional properties 'enable' not allowed",
		"monitoring.serviceMonitor.interval=half a minute":     "/monitoring/serviceMonitor/interval",
		"monitoring.prometheusRule.disabled.SecretfsTypo=true": "additional properties 'SecretfsTypo' not allowed",
		"monitoring.grafanaDashboard.labelKey=not a label key": "/monitoring/grafanaDashboard/labelKey",
	} {
		out, err := exec.Command(h, "template", "secretfs", chartDir, "--set", set).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("helm template --set %s: err %v, want an error naming %q:\n%s", set, err, want, out)
		}
	}
}

// objects renders the chart with values and returns its documents by
// kind/name.
func objects(t *testing.T, h, values string) map[string][]byte {
	t.Helper()
	out := run(t, h, append([]string{"template", "secretfs", chartDir, "--namespace", "secretfs"}, valuesArgs(values)...)...)
	objs := map[string][]byte{}
	for _, doc := range strings.Split(out, "\n---\n") {
		var m struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("helm template: a document is not YAML: %v", err)
		}
		if m.Kind == "" {
			continue // comments only
		}
		objs[m.Kind+"/"+m.Metadata.Name] = []byte(doc)
	}
	return objs
}

func decode[T any](t *testing.T, objs map[string][]byte, key string) *T {
	t.Helper()
	b, ok := objs[key]
	if !ok {
		t.Fatalf("no %s rendered", key)
	}
	var v T
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return &v
}

func hostPaths(spec *corev1.PodSpec) map[string]string {
	m := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			m[v.Name] = v.HostPath.Path
		}
	}
	return m
}

// TestChartRendersTheUpgradeContract checks, for every value set, what
// upgrades and providers rely on: both DaemonSets roll, with graces that
// let each wait for the other;
// both see the keeper's socket in the same host folder; every provider
// folder is a read-only hostPath and a --provider-dir; the plugin may read
// SecretProviderClasses (and nothing else) exactly when it talks to the
// API; the CRD is there when asked and survives helm uninstall.
func TestChartRendersTheUpgradeContract(t *testing.T) {
	h := helm(t)
	for _, v := range valueSets(t) {
		t.Run(setName(v), func(t *testing.T) {
			var vals struct {
				Source struct {
					Type string `json:"type"`
				} `json:"source"`
				Keeper struct {
					Enabled   bool   `json:"enabled"`
					SocketDir string `json:"socketDir"`
				} `json:"keeper"`
				Providers struct {
					Dirs []string `json:"dirs"`
				} `json:"providers"`
				InstallCRDs bool `json:"installCRDs"`
			}
			// The defaults, then the set's own values over them.
			for _, f := range []string{filepath.Join(chartDir, "values.yaml"), v} {
				if f == "" {
					continue
				}
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := yaml.Unmarshal(b, &vals); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
			}
			objs := objects(t, h, v)

			plugin := decode[appsv1.DaemonSet](t, objs, "DaemonSet/secretfs-csi")
			if got := plugin.Spec.UpdateStrategy.Type; got != appsv1.RollingUpdateDaemonSetStrategyType {
				t.Errorf("plugin updateStrategy %q, want RollingUpdate", got)
			}
			spec := &plugin.Spec.Template.Spec
			args := spec.Containers[0].Args
			socket := "--keeper=" + strings.TrimSuffix(vals.Keeper.SocketDir, "/") + "/keeper.sock"
			if slices.Contains(args, socket) != vals.Keeper.Enabled {
				t.Errorf("keeper enabled %v, plugin args %q", vals.Keeper.Enabled, args)
			}
			_, hasKeeper := objs["DaemonSet/secretfs-keeper"]
			if hasKeeper != vals.Keeper.Enabled {
				t.Fatalf("keeper enabled %v, keeper DaemonSet rendered %v", vals.Keeper.Enabled, hasKeeper)
			}
			if hasKeeper {
				k := decode[appsv1.DaemonSet](t, objs, "DaemonSet/secretfs-keeper")
				// Either DaemonSet may roll first, or both at once: a
				// stopping keeper waits (its grace) for a running plugin
				// to hold its mounts, a stopping plugin (30 s, --stop-wait
				// 25 s) for a keeper.
				if got := k.Spec.UpdateStrategy.Type; got != appsv1.RollingUpdateDaemonSetStrategyType || k.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.IntValue() != 1 {
					t.Errorf("keeper updateStrategy %q, want RollingUpdate with maxUnavailable 1", got)
				}
				if g := k.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 60 {
					t.Errorf("keeper termination grace %v, want at least 60 s for a new plugin to start", g)
				}
				if g := spec.TerminationGracePeriodSeconds; g == nil || *g <= 25 {
					t.Errorf("plugin termination grace %v, want over --stop-wait's 25 s", g)
				}
				if a, p := hostPaths(&k.Spec.Template.Spec)["run"], hostPaths(spec)["keeper"]; a != vals.Keeper.SocketDir || p != a {
					t.Errorf("keeper socket folder: keeper hostPath %q, plugin hostPath %q, want %q", a, p, vals.Keeper.SocketDir)
				}
			}

			mounts := map[string]corev1.VolumeMount{}
			for _, m := range spec.Containers[0].VolumeMounts {
				mounts[m.MountPath] = m
			}
			hp := hostPaths(spec)
			for i, dir := range vals.Providers.Dirs {
				if !slices.Contains(args, "--provider-dir="+dir) {
					t.Errorf("no --provider-dir=%s in %q", dir, args)
				}
				m, ok := mounts[dir]
				if !ok || !m.ReadOnly || hp[m.Name] != dir {
					t.Errorf("provider folder %d %s: mount %+v, hostPath %q; want a read-only hostPath at the same path", i, dir, m, hp[m.Name])
				}
			}
			if n := strings.Count(strings.Join(args, "\n"), "--provider-dir="); n != len(vals.Providers.Dirs) {
				t.Errorf("%d --provider-dir flags for %d folders", n, len(vals.Providers.Dirs))
			}

			_, hasRole := objs["ClusterRole/secretfs-csi"]
			_, hasBinding := objs["ClusterRoleBinding/secretfs-csi"]
			if kube := vals.Source.Type == "kube"; hasRole != kube || hasBinding != kube {
				t.Errorf("source %s: ClusterRole %v, binding %v", vals.Source.Type, hasRole, hasBinding)
			}
			if hasRole {
				r := decode[rbacv1.ClusterRole](t, objs, "ClusterRole/secretfs-csi")
				want := []rbacv1.PolicyRule{{APIGroups: []string{"secrets-store.csi.x-k8s.io"},
					Resources: []string{"secretproviderclasses"}, Verbs: []string{"get", "list", "watch"}},
					{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}}}
				if !reflect.DeepEqual(r.Rules, want) {
					t.Errorf("ClusterRole rules %+v, want only %+v", r.Rules, want)
				}
			}

			crd, hasCRD := objs["CustomResourceDefinition/secretproviderclasses.secrets-store.csi.x-k8s.io"]
			if hasCRD != vals.InstallCRDs {
				t.Errorf("installCRDs %v, CRD rendered %v", vals.InstallCRDs, hasCRD)
			}
			if hasCRD && !bytes.Contains(crd, []byte("helm.sh/resource-policy: keep")) {
				t.Error("the CRD lacks helm.sh/resource-policy: keep (helm uninstall would delete every SecretProviderClass)")
			}
		})
	}
}

// TestRenderedManifestsUpToDate: deploy/*.yaml are exactly what the chart
// renders with default values (`make deploy`), and nothing else lies there.
func TestRenderedManifestsUpToDate(t *testing.T) {
	helm(t)
	dir := t.TempDir()
	run(t, "bash", "chart.sh", "manifests", dir)
	rendered, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(rendered) == 0 {
		t.Fatalf("chart.sh manifests rendered nothing (%v)", err)
	}
	for _, f := range rendered {
		name := filepath.Base(f)
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("deploy/%s is missing: run make deploy", name)
		} else if !bytes.Equal(got, want) {
			t.Errorf("deploy/%s differs from the chart's rendering: run make deploy", name)
		}
	}
	checkedIn, _ := filepath.Glob("*.yaml")
	for _, name := range checkedIn {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("deploy/%s is not rendered from the chart: move it into deploy/chart/secretfs/templates (or delete it), then run make deploy", name)
		}
	}
}

// TestCRDFromModule: the chart's SecretProviderClass CRD is the Secrets
// Store CSI Driver's own file, byte for byte (`make crds` copies it), and
// the rendered CRD is that object with only our label and keep annotation
// added.
func TestCRDFromModule(t *testing.T) {
	src := strings.TrimSpace(run(t, "bash", "chart.sh", "crd-source"))
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(chartDir, "files", filepath.Base(src))
	got, err := os.ReadFile(copied)
	if err != nil {
		t.Fatalf("%v: run make crds", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not the module's %s: run make crds", copied, src)
	}

	h := helm(t)
	rendered := objects(t, h, "")["CustomResourceDefinition/secretproviderclasses.secrets-store.csi.x-k8s.io"]
	var a, b map[string]any
	if err := yaml.Unmarshal(want, &a); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(rendered, &b); err != nil {
		t.Fatal(err)
	}
	meta := b["metadata"].(map[string]any)
	delete(meta, "labels")
	delete(meta["annotations"].(map[string]any), "helm.sh/resource-policy")
	if !reflect.DeepEqual(a, b) {
		t.Error("the rendered CRD differs from the module's beyond labels and the keep annotation")
	}
}
