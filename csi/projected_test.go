package csi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/secretfs/secretfs/cache"
)

// This file sorts before rules_test.go on purpose: its TestHandOverAndUnmountAll
// calls HandOver, whose fusefs.Quiesce stops this process's notices for
// good, after which a real mount's switches stay hidden behind the
// kernel's caches.

// The attribute `sources`: kubelet's projected shape, checked whole
// before anything is read; every error is InvalidArgument naming the
// entry and field, never a value.
func TestParseSourcesAttributes(t *testing.T) {
	pod := func(kv ...string) map[string]string {
		m := map[string]string{podNamespaceKey: "team", podNameKey: "app", ephemeralKey: "true"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	two := `[{"secret": {"name": "db", "items": [{"key": "password", "path": "db/password", "mode": 256}], "optional": true}}, {"secret": {"name": "tls"}}]`
	a, err := ParseAttributes(pod("sources", two, "defaultMode", "0440", "changeDetection", "Get"), false, "1001")
	if err != nil {
		t.Fatal(err)
	}
	specs := a.sourceSpecs()
	if len(specs) != 2 || a.Strategy != cache.StrategyGet || a.Spec.Namespace != "team" {
		t.Fatalf("%+v", a)
	}
	db, tls := specs[0], specs[1]
	if db.Namespace != "team" || db.SecretName != "db" || !db.Optional || len(db.Items) != 1 || *db.Items[0].Mode != 0o400 ||
		*db.DefaultMode != 0o440 || *db.FSGroup != 1001 {
		t.Errorf("db source %+v", db)
	}
	if tls.SecretName != "tls" || tls.Optional || tls.Items != nil || *tls.DefaultMode != 0o440 || *tls.FSGroup != 1001 {
		t.Errorf("tls source %+v", tls)
	}
	ms := a.mountedSources()
	if len(ms) != 2 || ms[0].Spec.SecretName != "db" || ms[0].Fed != "" {
		t.Errorf("mounted sources %+v", ms)
	}
	// YAML as kubectl writes it (a leading 0 is octal), and a class.
	yaml := "- secret:\n    name: db\n    items:\n    - {key: password, path: p, mode: 0400}\n- secretProviderClass:\n    name: vault-db\n"
	a, err = ParseAttributes(pod("sources", yaml), false, "")
	if err != nil {
		t.Fatal(err)
	}
	if *a.sourceSpecs()[0].Items[0].Mode != 0o400 || a.Sources[1].Class != "vault-db" || !a.hasClasses() {
		t.Errorf("%+v", a.Sources)
	}
	if ms := a.mountedSources(); ms[1].Fed != `secretProviderClass "team/vault-db"` {
		t.Errorf("class source named %q", ms[1].Fed)
	}
	if a := mustParse(t, pod("sources", two, "subPathUpdates", "true")); !a.SubPathUpdates {
		t.Errorf("subPathUpdates with sources: %+v", a)
	}
	if a := mustParse(t, pod("sources", `[{"secret": {"name": "a", "optional": "true"}}]`)); !a.Sources[0].Secret.Optional {
		t.Errorf("optional \"true\" as a string: %+v", a.Sources[0].Secret)
	}
	if a.key() == mustParse(t, pod("sources", two)).key() {
		t.Errorf("two volumes of different sources share a key")
	}

	bad := []struct {
		name, want string
		vc         map[string]string
	}{
		{"with secretName", `volume attributes sources and secretName: a volume shows its sources, or one Secret or provider class, not both`, pod("sources", two, "secretName", "db")},
		{"with secretProviderClass", `volume attributes sources and secretProviderClass:`, pod("sources", two, "secretProviderClass", "c")},
		{"items beside", `volume attribute items: does not apply with sources`, pod("sources", two, "items", `[{"key":"a","path":"a"}]`)},
		{"optional beside", `volume attribute optional: does not apply with sources`, pod("sources", two, "optional", "true")},
		{"base64Keys beside", `volume attribute base64Keys: does not apply with sources`, pod("sources", two, "base64Keys", "a")},
		{"unknown source kind", `volume attribute sources: [1].configMap: unknown field (want secret or secretProviderClass)`, pod("sources", `[{"secret":{"name":"a"}},{"configMap":{"name":"c"}}]`)},
		{"unknown field in secret", `volume attribute sources: [0].secret.itemz: unknown field (want name, items, optional)`, pod("sources", `[{"secret":{"name":"a","itemz":[]}}]`)},
		{"unknown field in class", `volume attribute sources: [0].secretProviderClass.provider: unknown field (want name)`, pod("sources", `[{"secretProviderClass":{"name":"a","provider":"vault"}}]`)},
		{"both kinds", `volume attribute sources: [0]: want exactly one of secret and secretProviderClass`, pod("sources", `[{"secret":{"name":"a"},"secretProviderClass":{"name":"b"}}]`)},
		{"empty source", `volume attribute sources: [0]: want exactly one of secret and secretProviderClass`, pod("sources", `[{}]`)},
		{"no name", `volume attribute sources: [0].secret.name: required`, pod("sources", `[{"secret":{"optional":true}}]`)},
		{"bad name", `volume attribute sources: [0].secret.name: not a valid object name`, pod("sources", `[{"secret":{"name":"Not_A_Name"}}]`)},
		{"optional not bool", `volume attribute sources: [0].secret.optional: must be true or false`, pod("sources", `[{"secret":{"name":"a","optional":"yes"}}]`)},
		{"optional a number", `volume attribute sources: [0].secret.optional: must be true or false`, pod("sources", `[{"secret":{"name":"a","optional":1}}]`)},
		{"bad item path", `volume attribute sources: [0].secret: items[0].path "../x": must not contain '..'`, pod("sources", `[{"secret":{"name":"a","items":[{"key":"k","path":"../x"}]}}]`)},
		{"item without key", `volume attribute sources: [0].secret.items: [0].key: required`, pod("sources", `[{"secret":{"name":"a","items":[{"path":"x"}]}}]`)},
		{"empty list", `volume attribute sources: no source in the list`, pod("sources", `[]`)},
		{"not a list", `volume attribute sources: not a list of sources`, pod("sources", `{"secret":{"name":"a"}}`)},
		{"other namespace", `volume attribute secretNamespace: an inline volume may only read its pod's namespace`, pod("sources", two, "secretNamespace", "kube-system")},
		{"class without pod namespace", `volume attribute csi.storage.k8s.io/pod.namespace is missing`, map[string]string{"sources": `[{"secretProviderClass":{"name":"c"}}]`, "secretNamespace": "team", ephemeralKey: "false"}},
	}
	for _, tc := range bad {
		_, err := ParseAttributes(tc.vc, false, "")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func mustParse(t *testing.T, vc map[string]string) *Attributes {
	t.Helper()
	a, err := ParseAttributes(vc, false, "")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Publish hands a volume of several sources to the VolumeMaker (as
// Config.Sources), a republish refreshes it, and a publish of other
// sources at the same target is a clash.
func TestPublishSourcesBookkeeping(t *testing.T) {
	p := startFakePlugin(t)
	two := `[{"secret": {"name": "db"}}, {"secret": {"name": "tls", "optional": true}}]`
	req, target := p.inline(pod{ns: "team", name: "app", fsGroup: "7"}, "v", map[string]string{"sources": two}, nil)
	p.mustPublish(req)
	v := p.mk.only(t)
	if v.kind != "Mount" || v.dir != target || len(v.cfg.Sources) != 2 {
		t.Fatalf("made %v with %d sources", v, len(v.cfg.Sources))
	}
	if s := v.cfg.Sources[1].Spec; s.Namespace != "team" || s.SecretName != "tls" || !s.Optional || *s.FSGroup != 7 {
		t.Errorf("source %+v", s)
	}
	p.mustPublish(req)
	if _, _, refreshes, _, _, _ := v.state(); refreshes != 1 {
		t.Errorf("%d refreshes after a republish, want 1", refreshes)
	}
	req.VolumeContext["sources"] = `[{"secret": {"name": "db"}}]`
	wantCode(t, p.publish(req), codes.AlreadyExists)
	p.unpublish(req)
	wantAbsent(t, target)

	// Bad attributes: InvalidArgument naming what is wrong, nothing made.
	for _, tc := range []struct{ attrs map[string]string }{
		{map[string]string{"sources": two, "secretName": "db"}},
		{map[string]string{"sources": two, "secretProviderClass": "c"}},
		{map[string]string{"sources": `[{"secret": {"name": "db", "key": "x"}}]`}},
		{map[string]string{"sources": `[{"configMap": {"name": "c"}}]`}},
	} {
		req, target := p.inline(pod{ns: "team", name: "bad"}, "v", tc.attrs, nil)
		err := p.publish(req)
		wantCode(t, err, codes.InvalidArgument)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "sources") {
			t.Errorf("%v: %q does not name the attribute", tc.attrs, msg)
		}
		wantAbsent(t, target)
	}
	if n := len(p.mk.made()); n != 1 {
		t.Errorf("%d volumes made, want only the first", n)
	}
}

// Real mounts: two Secrets in one volume; a conflict, a missing source
// and an invalid one refuse the publish with one clear message each; an
// update that would conflict keeps the last good version.
func TestPublishSources(t *testing.T) {
	p := startPlugin(t)
	p.writeSecret("default", "db", map[string]string{"password": "pw"})
	p.writeSecret("default", "tls", map[string]string{"tls.crt": "CERT", "tls.key": "KEY"})
	p.writeFile("bad.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: bad, namespace: default}\ndata: {k: '!!notbase64'}\n")
	two := `[{"secret": {"name": "db"}}, {"secret": {"name": "tls"}}, {"secret": {"name": "later", "optional": true}}]`
	req, target := p.inline(pod{ns: "default", name: "app"}, "v", map[string]string{"sources": two}, nil)
	p.mustPublish(req)
	wantFiles(t, target, map[string]string{"password": "pw", "tls.crt": "CERT", "tls.key": "KEY"})
	if l, err := os.Readlink(filepath.Join(target, "tls.key")); err != nil || l != "..data/tls.key" {
		t.Errorf("tls.key -> %q %v", l, err)
	}

	// Each source followed; the optional one appears.
	p.writeSecret("default", "tls", map[string]string{"tls.crt": "CERT2", "tls.key": "KEY2"})
	waitFor(t, "tls's update", func() bool { return read(t, filepath.Join(target, "tls.key")) == "KEY2" })
	p.writeSecret("default", "later", map[string]string{"extra": "x"})
	waitFor(t, "the optional source", func() bool { _, err := os.Stat(filepath.Join(target, "extra")); return err == nil })

	// db gains tls.key: kept out, reported as a failed refresh.
	p.writeSecret("default", "db", map[string]string{"password": "pw2", "tls.key": "OTHER"})
	waitFor(t, "the conflict in the log", func() bool {
		return strings.Contains(p.logs.String(), `sources conflict at path \"tls.key\": secret \"default/db\" and secret \"default/tls\" both give it`)
	})
	wantFiles(t, target, map[string]string{"password": "pw", "tls.crt": "CERT2", "tls.key": "KEY2", "extra": "x"})
	p.mustPublish(req) // a republish answers OK and keeps it
	wantFiles(t, target, map[string]string{"password": "pw", "tls.crt": "CERT2", "tls.key": "KEY2", "extra": "x"})
	if strings.Contains(p.logs.String(), "OTHER") {
		t.Errorf("a value reached the log")
	}
	p.writeSecret("default", "db", map[string]string{"password": "pw3"})
	waitFor(t, "db after the conflict", func() bool { return read(t, filepath.Join(target, "password")) == "pw3" })
	p.unpublish(req)

	cases := []struct {
		name, sources, msg string
		code               codes.Code
	}{
		{"conflict", `[{"secret": {"name": "tls"}}, {"secret": {"name": "db", "items": [{"key": "password", "path": "tls.crt"}]}}]`,
			`sources conflict at path "tls.crt": secret "default/tls" and secret "default/db" both give it`, codes.FailedPrecondition},
		{"file and folder", `[{"secret": {"name": "db", "items": [{"key": "password", "path": "tls.crt/password"}]}}, {"secret": {"name": "tls"}}]`,
			`sources conflict at path "tls.crt": secret "default/db" and secret "default/tls" give a file and a folder there`, codes.FailedPrecondition},
		{"missing", `[{"secret": {"name": "db"}}, {"secret": {"name": "nope"}}]`, `secret "default/nope" not found`, codes.NotFound},
		{"missing key", `[{"secret": {"name": "db", "items": [{"key": "nokey", "path": "x"}]}}]`, `secret "default/db" has no key "nokey"`, codes.NotFound},
		{"invalid", `[{"secret": {"name": "db"}}, {"secret": {"name": "bad"}}]`, `secret "default/bad"`, codes.FailedPrecondition},
	}
	for _, tc := range cases {
		req, target := p.inline(pod{ns: "default", name: "app-" + strings.ReplaceAll(tc.name, " ", "-")}, "v", map[string]string{"sources": tc.sources}, nil)
		err := p.publish(req)
		if status.Code(err) != tc.code || !strings.HasPrefix(status.Convert(err).Message(), tc.msg) {
			t.Errorf("%s: got %v, want %v %q", tc.name, err, tc.code, tc.msg)
		}
		if strings.Contains(status.Convert(err).Message(), "pw3") {
			t.Errorf("%s: a value in the error", tc.name)
		}
		wantAbsent(t, target)
	}
}

// A secretProviderClass source: the provider's files join the Secret's
// in one volume, under the same conflict rule.
func TestPublishSourcesWithClass(t *testing.T) {
	p := startProviderPlugin(t)
	p.writeSecret("team-a", "tls", map[string]string{"tls.crt": "CERT"})
	srcs := `[{"secret": {"name": "tls"}}, {"secretProviderClass": {"name": "db"}}]`
	req, target := p.inline(pod{ns: "team-a", name: "web"}, "v", map[string]string{"sources": srcs}, nil)
	p.mustPublish(req)
	wantFiles(t, target, map[string]string{"tls.crt": "CERT", "db-password": "s3cret"})
	if n := len(p.srv.Requests()); n != 1 {
		t.Errorf("%d provider calls, want 1", n)
	}
	// A republish asks the provider again; its new files switch in.
	p.srv.SetFiles(map[string]string{"db-password": "n3w"}, "v2")
	p.mustPublish(req)
	waitFor(t, "the provider's new files", func() bool { return read(t, filepath.Join(target, "db-password")) == "n3w" })
	// The provider now gives tls.crt too: a conflict, the last good stays.
	p.srv.SetFiles(map[string]string{"db-password": "n3w", "tls.crt": "OTHER"}, "v3")
	p.mustPublish(req)
	waitFor(t, "the conflict in the log", func() bool {
		return strings.Contains(p.logs.String(), `secret \"team-a/tls\" and secretProviderClass \"team-a/db\" both give it`)
	})
	wantFiles(t, target, map[string]string{"tls.crt": "CERT", "db-password": "n3w"})
	p.unpublish(req)

	req2, target2 := p.inline(pod{ns: "team-a", name: "web-2"}, "v", map[string]string{"sources": `[{"secret": {"name": "tls"}}, {"secretProviderClass": {"name": "nope"}}]`}, nil)
	err := p.publish(req2)
	wantCode(t, err, codes.NotFound)
	wantAbsent(t, target2)
}

// The README's and deploy/examples' Pod with sources parses as it says.
func TestSourcesExamplePod(t *testing.T) {
	b, err := os.ReadFile("../deploy/examples/pods/sources-pod.yaml")
	must(t, err)
	var pod corev1.Pod
	must(t, yaml.UnmarshalStrict(b, &pod))
	vc := pod.Spec.Volumes[0].CSI.VolumeAttributes
	vc[podNamespaceKey], vc[ephemeralKey] = "default", "true"
	a := mustParse(t, vc)
	specs := a.sourceSpecs()
	if len(specs) != 2 || specs[0].SecretName != "mysecret" || specs[0].Items[0].Path != "db/password" ||
		specs[1].SecretName != "ssh-key-secret" || *specs[1].DefaultMode != 0o400 {
		t.Errorf("%+v", a.Sources)
	}
}
