package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The objects each monitoring value renders (release "secretfs").
var monitoringObjects = map[string][]string{
	"serviceMonitor":   {"Service/secretfs-csi-metrics", "ServiceMonitor/secretfs-csi"},
	"prometheusRule":   {"PrometheusRule/secretfs"},
	"grafanaDashboard": {"ConfigMap/secretfs-dashboard"},
}

// The alerts the PrometheusRule holds.
var alertNames = []string{"SecretfsVolumesNotFollowingSecret", "SecretfsAuthFailures",
	"SecretfsProviderErrors", "SecretfsUnprotectedVolumes", "SecretfsRestartingRepeatedly"}

// enabled renders the chart with monitoring.NAME.enabled=true for each name.
func enabled(t *testing.T, h string, names ...string) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	var vals strings.Builder
	vals.WriteString("monitoring:\n")
	for _, n := range names {
		fmt.Fprintf(&vals, "  %s: {enabled: true}\n", n)
	}
	f := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(f, []byte(vals.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return objects(t, h, f)
}

// TestChartMonitoringOffByDefault: with the defaults (and deploy/*.yaml),
// no monitoring object; each value on renders its objects and no other's.
func TestChartMonitoringOffByDefault(t *testing.T) {
	h := helm(t)
	all := slices.Concat(slices.Collect(maps.Values(monitoringObjects))...)
	defaults := objects(t, h, "")
	for _, key := range all {
		if _, ok := defaults[key]; ok {
			t.Errorf("default values render %s", key)
		}
	}
	for name, want := range monitoringObjects {
		objs := enabled(t, h, name)
		for _, key := range all {
			_, got := objs[key]
			if got != slices.Contains(want, key) {
				t.Errorf("monitoring.%s.enabled=true: %s rendered %v", name, key, got)
			}
		}
	}
}

// TestChartServiceMonitor: the headless Service selects the plugin's Pods
// and names their metrics port; the ServiceMonitor (decoded strictly with
// the Prometheus Operator's own types) selects that Service and port.
func TestChartServiceMonitor(t *testing.T) {
	objs := enabled(t, helm(t), "serviceMonitor")
	svc := decode[corev1.Service](t, objs, "Service/secretfs-csi-metrics")
	ds := decode[appsv1.DaemonSet](t, objs, "DaemonSet/secretfs-csi")
	sm := decode[monitoringv1.ServiceMonitor](t, objs, "ServiceMonitor/secretfs-csi")

	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service clusterIP %q, want None (headless)", svc.Spec.ClusterIP)
	}
	pod := ds.Spec.Template.Labels
	for k, v := range svc.Spec.Selector {
		if pod[k] != v {
			t.Errorf("Service selector %s=%s does not select the plugin's Pods (labels %v)", k, v, pod)
		}
	}
	var container *corev1.ContainerPort
	for i, p := range ds.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == "metrics" {
			container = &ds.Spec.Template.Spec.Containers[0].Ports[i]
		}
	}
	if container == nil || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != container.Name ||
		svc.Spec.Ports[0].Port != container.ContainerPort {
		t.Fatalf("Service ports %+v do not lead to the container's metrics port %+v", svc.Spec.Ports, container)
	}

	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("ServiceMonitor selector %v: %v", sm.Spec.Selector, err)
	}
	if !sel.Matches(labelSet(svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not match the Service's labels %v", sel, svc.Labels)
	}
	if ns := sm.Spec.NamespaceSelector.MatchNames; !slices.Equal(ns, []string{svc.Namespace}) {
		t.Errorf("ServiceMonitor namespaces %q, want the Service's %q", ns, svc.Namespace)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %+v, want one", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != svc.Spec.Ports[0].Name || ep.Path != "/metrics" || ep.Interval == "" {
		t.Errorf("ServiceMonitor endpoint %+v, want port %q, path /metrics and an interval", ep, svc.Spec.Ports[0].Name)
	}
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool              { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string            { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) { v, ok := l[k]; return v, ok }

// rules decodes the rendered PrometheusRule strictly and checks its groups
// as Prometheus loads a rule file (rulefmt: PromQL, durations, labels,
// annotation templates).
func rules(t *testing.T, objs map[string][]byte) []monitoringv1.Rule {
	t.Helper()
	pr := decode[monitoringv1.PrometheusRule](t, objs, "PrometheusRule/secretfs")
	b, err := yaml.Marshal(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, errs := rulefmt.Parse(b, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); len(errs) > 0 {
		t.Fatalf("the rules do not load in Prometheus: %v", errs)
	}
	var out []monitoringv1.Rule
	for _, g := range pr.Spec.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestChartPrometheusRule: every alert of the issue, each with a severity
// and a summary and description; the one about volumes not following
// fires after 5 minutes; alertLabels reach every alert and disabled leaves
// one out.
func TestChartPrometheusRule(t *testing.T) {
	h := helm(t)
	var got []string
	for _, r := range rules(t, enabled(t, h, "prometheusRule")) {
		got = append(got, r.Alert)
		if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: labels %v, annotations %v; want a severity, a summary and a description", r.Alert, r.Labels, slices.Collect(maps.Keys(r.Annotations)))
		}
		if r.Alert == "SecretfsVolumesNotFollowingSecret" && (r.For == nil || *r.For != "5m") {
			t.Errorf("%s: for %v, want 5m", r.Alert, r.For)
		}
	}
	if !slices.Equal(got, alertNames) {
		t.Errorf("alerts %q, want %q", got, alertNames)
	}

	out := run(t, h, "template", "secretfs", chartDir, "--namespace", "secretfs",
		"--values", filepath.Join(chartDir, "ci", "prometheusrule-values.yaml"),
		"--set", "monitoring.prometheusRule.disabled.SecretfsAuthFailures=true")
	objs := map[string][]byte{"PrometheusRule/secretfs": []byte(out[strings.Index(out, "apiVersion: monitoring.coreos.com/v1"):])}
	for _, r := range rules(t, objs) {
		if r.Alert == "SecretfsAuthFailures" {
			t.Error("SecretfsAuthFailures rendered though disabled")
		}
		if r.Labels["team"] != "platform" {
			t.Errorf("%s: labels %v, want alertLabels' team=platform", r.Alert, r.Labels)
		}
	}
}

// dashboard is the rendered ConfigMap's dashboard.
type dashboard struct {
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Title      string `json:"title"`
	Type       string `json:"type"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func renderedDashboard(t *testing.T, objs map[string][]byte) (*corev1.ConfigMap, *dashboard) {
	t.Helper()
	cm := decode[corev1.ConfigMap](t, objs, "ConfigMap/secretfs-dashboard")
	var d dashboard
	if err := json.Unmarshal([]byte(cm.Data["secretfs.json"]), &d); err != nil {
		t.Fatalf("secretfs.json: %v", err)
	}
	return cm, &d
}

// TestChartGrafanaDashboard: the ConfigMap carries the sidecar's label
// (grafana_dashboard: "1" unless set otherwise), the dashboard's data
// source is a variable every panel uses, and it has the panels.
func TestChartGrafanaDashboard(t *testing.T) {
	h := helm(t)
	cm, d := renderedDashboard(t, enabled(t, h, "grafanaDashboard"))
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("ConfigMap labels %v, want grafana_dashboard: \"1\"", cm.Labels)
	}
	if v := d.Templating.List; len(v) == 0 || v[0].Type != "datasource" || v[0].Query != "prometheus" {
		t.Errorf("first variable %+v, want a prometheus datasource variable", v)
	}
	var titles []string
	for _, p := range allPanels(d.Panels) {
		if p.Type == "row" {
			continue
		}
		titles = append(titles, p.Title)
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
	}
	for _, want := range []string{"Publishes and unpublishes", "Publish latency", "Update latency",
		"Cache entries and watches", "Volumes mounted", "Resident memory", "Threads", "Auth and provider failures"} {
		if !slices.Contains(titles, want) {
			t.Errorf("no panel %q in %q", want, titles)
		}
	}

	other, _ := renderedDashboard(t, objects(t, h, filepath.Join(chartDir, "ci", "grafanadashboard-values.yaml")))
	if other.Labels["grafana.example.com/dashboard"] != "true" || other.Namespace != "monitoring" || other.Annotations["grafana_folder"] != "Storage" {
		t.Errorf("labelKey/labelValue/namespace/annotations not applied: %+v", other.ObjectMeta)
	}
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// Series the chart may query that a plugin cannot serve: kube-state-metrics'
// restart counter (a process cannot count its own restarts), with why.
var notThePlugins = map[string]string{
	"kube_pod_container_status_restarts_total": "kube-state-metrics (SecretfsRestartingRepeatedly)",
}

// Labels Prometheus adds to a target's series at the scrape (and our
// ServiceMonitor's relabeling adds node): matchers on them are not checked
// against /metrics.
var targetLabels = map[string]bool{"job": true, "instance": true, "namespace": true, "pod": true,
	"node": true, "service": true, "endpoint": true, "container": true}

// TestMonitoringSeriesExist: every series the PrometheusRule and the
// dashboard query — each selector's metric name, and the value of each of
// its equality matchers on the plugin's own labels — is on the /metrics of
// the real plugin binary just started (no volume yet: a series that
// appears only with an event would be missing from a fresh plugin, and an
// alert or panel on it would show nothing, not 0).
func TestMonitoringSeriesExist(t *testing.T) {
	objs := enabled(t, helm(t), "prometheusRule", "grafanaDashboard")
	queries := map[string]string{} // PromQL -> where
	for _, r := range rules(t, objs) {
		queries[r.Expr.String()] = "alert " + r.Alert
	}
	_, d := renderedDashboard(t, objs)
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			queries[grafanaVars.Replace(tg.Expr)] = "panel " + p.Title
		}
	}
	for _, v := range d.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue // the datasource variable
		}
		m := labelValues.FindStringSubmatch(fmt.Sprint(q["query"]))
		if m == nil {
			t.Fatalf("variable %s: query %v is not label_values(SELECTOR, LABEL)", v.Name, q["query"])
		}
		queries[grafanaVars.Replace(m[1])] = "variable " + v.Name
	}
	if len(queries) < 10 {
		t.Fatalf("only %d queries found in the rules and the dashboard", len(queries))
	}

	served := scrapePlugin(t)
	p := parser.NewParser(parser.Options{})
	for q, where := range queries {
		expr, err := p.ParseExpr(q)
		if err != nil {
			t.Errorf("%s: %q: %v", where, q, err)
			continue
		}
		n := 0
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			if vs, ok := node.(*parser.VectorSelector); ok {
				n++
				checkSelector(t, where, vs, served)
			}
			return nil
		})
		if n == 0 {
			t.Errorf("%s: %q selects no series", where, q)
		}
	}
}

// Grafana's variables, replaced by values that parse as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$job", "secretfs-csi-metrics", "$node", ".*")

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)

// checkSelector: the selector's name is served, and so is each value its
// equality matchers ask of the plugin's own labels.
func checkSelector(t *testing.T, where string, vs *parser.VectorSelector, served map[string][]model.LabelSet) {
	t.Helper()
	if why, ok := notThePlugins[vs.Name]; ok {
		t.Logf("%s: %s is not the plugin's: %s", where, vs.Name, why)
		return
	}
	series, ok := served[vs.Name]
	if !ok {
		t.Errorf("%s: %s is not on a fresh plugin's /metrics", where, vs.Name)
		return
	}
	for _, m := range vs.LabelMatchers {
		if m.Type != labels.MatchEqual || m.Name == model.MetricNameLabel || targetLabels[m.Name] {
			continue
		}
		if !slices.ContainsFunc(series, func(l model.LabelSet) bool { return string(l[model.LabelName(m.Name)]) == m.Value }) {
			t.Errorf("%s: no series %s{%s} on a fresh plugin's /metrics", where, vs.Name, m)
		}
	}
}

// scrapePlugin starts the real plugin (`secretfs csi`, file source, no
// volume) with --metrics-addr and returns its /metrics: the label sets of
// each series name (histograms as _bucket, _sum and _count, as PromQL
// names them).
func scrapePlugin(t *testing.T) map[string][]model.LabelSet {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "secretfs")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/secretfs").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, d := range []string{"src", "root"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "csi", "--endpoint", "unix://"+filepath.Join(dir, "csi.sock"), "--node-id", "n1",
		"--source", "file:"+filepath.Join(dir, "src"), "--mount-root", filepath.Join(dir, "root"), "--metrics-addr", addr)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var body []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's /metrics did not answer within 30 s: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := tp.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	served := map[string][]model.LabelSet{}
	for name, mf := range families {
		names := []string{name}
		switch mf.GetType().String() {
		case "HISTOGRAM":
			names = []string{name + "_bucket", name + "_sum", name + "_count"}
		case "SUMMARY":
			names = append(names, name+"_sum", name+"_count")
		}
		for _, m := range mf.GetMetric() {
			ls := model.LabelSet{}
			for _, l := range m.GetLabel() {
				ls[model.LabelName(l.GetName())] = model.LabelValue(l.GetValue())
			}
			for _, n := range names {
				served[n] = append(served[n], ls)
			}
		}
	}
	return served
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
