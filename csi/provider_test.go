package csi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/backend/file"
	"github.com/secretfs/secretfs/backend/provider"
	"github.com/secretfs/secretfs/backend/provider/providertest"
)

// providerPlugin is the harness's plugin serving secretProviderClass
// volumes: classes from its own file source folder (as `secretfs csi
// --source file:DIR` does), a scripted provider "vault" on a unix socket.
type providerPlugin struct {
	*plugin
	srv   *providertest.Server
	socks string
}

// boundClasses reads classes from the harness's source folder, which
// exists only once startPlugin has made it.
type boundClasses struct{ b atomic.Pointer[file.Backend] }

func (c *boundClasses) GetClass(ctx context.Context, ns, name string) (*backend.ProviderClass, error) {
	return c.b.Load().GetClass(ctx, ns, name)
}

func startProviderPlugin(t *testing.T) *providerPlugin {
	t.Helper()
	return startProviderPluginOn(t, startPlugin)
}

// startProviderPluginOn is startProviderPlugin on the plugin start gives
// (startPlugin, or startFakePlugin).
func startProviderPluginOn(t *testing.T, start func(*testing.T, ...pluginOpt) *plugin) *providerPlugin {
	t.Helper()
	socks := t.TempDir()
	classes := &boundClasses{}
	var client *provider.Client
	p := start(t, func(c *Config, _ *ServerOptions) {
		client = provider.NewClient(provider.ClientOptions{Dirs: []string{socks}, Timeout: 5 * time.Second, Logger: c.Logger})
		c.Providers = provider.NewPool(client, classes, c.Logger)
	})
	t.Cleanup(client.Close)
	b, err := file.New(p.src)
	must(t, err)
	classes.b.Store(b)
	pp := &providerPlugin{plugin: p, srv: providertest.Start(t, socks, "vault"), socks: socks}
	pp.writeClass("team-a", "db", "vault", `{"roleName": "app", "objects": "- objectName: db-password"}`)
	pp.srv.SetFiles(map[string]string{"db-password": "s3cret"}, "v1")
	return pp
}

func (p *providerPlugin) writeClass(ns, name, prov, params string) {
	p.writeFile("spc-"+ns+"-"+name+".yaml", fmt.Sprintf(
		"apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  provider: %s\n  parameters: %s\n", name, ns, prov, params))
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}

// A provider's reply as a volume: files, modes, nested folders and
// dotfiles in kubelet's layout, fsGroup applied; the request is the
// driver's.
func TestProviderVolume(t *testing.T) {
	p := startProviderPlugin(t)
	p.srv.SetReply(&v1alpha1.MountResponse{
		Files: []*v1alpha1.File{
			{Path: "username", Contents: []byte("admin")}, // mode 0: defaultMode
			{Path: "certs/tls.crt", Mode: 0o440, Contents: []byte("CERT")},
			{Path: ".hidden", Mode: 0o600, Contents: []byte("dot")},
		},
		ObjectVersion: []*v1alpha1.ObjectVersion{{Id: "secret/db", Version: "3"}},
	})
	tokens := `{"vault":{"token":"tok-1","expirationTimestamp":"2030-01-01T00:00:00Z"}}`
	req, target := p.inline(pod{ns: "team-a", name: "web", fsGroup: "1001"}, "secrets",
		map[string]string{"secretProviderClass": "db", "defaultMode": "0400"},
		map[string]string{tokensKey: tokens, "clientID": "abc"})
	p.mustPublish(req)
	wantFiles(t, target, map[string]string{"username": "admin", "certs/tls.crt": "CERT", ".hidden": "dot"})
	for path, want := range map[string]os.FileMode{"username": 0o440, "certs/tls.crt": 0o440, ".hidden": 0o640} {
		if got := mode(t, filepath.Join(target, path)); got != want {
			t.Errorf("%s mode %#o, want %#o (fsGroup adds 0440)", path, got, want)
		}
		fi, err := os.Stat(filepath.Join(target, path))
		must(t, err)
		if owner(fi) != [2]uint32{0, 1001} {
			t.Errorf("%s owner %v, want root:1001", path, owner(fi))
		}
	}
	for name, want := range map[string]string{"username": "..data/username", "certs": "..data/certs", ".hidden": "..data/.hidden"} {
		if l, err := os.Readlink(filepath.Join(target, name)); err != nil || l != want {
			t.Errorf("%s -> %q %v, want %s", name, l, err, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(target, "..data")); err != nil || !strings.HasPrefix(l, "..20") {
		t.Errorf("..data -> %q %v", l, err)
	}

	rs := p.srv.Requests()
	if len(rs) != 1 {
		t.Fatalf("%d Mount calls, want 1", len(rs))
	}
	var attrs, secrets map[string]string
	must(t, json.Unmarshal([]byte(rs[0].Attributes), &attrs))
	must(t, json.Unmarshal([]byte(rs[0].Secrets), &secrets))
	for k, v := range req.VolumeContext {
		if attrs[k] != v {
			t.Errorf("attributes[%s] = %q, want the volume context's %q", k, attrs[k], v)
		}
	}
	if attrs["roleName"] != "app" || attrs["objects"] != "- objectName: db-password" || attrs[tokensKey] != tokens {
		t.Errorf("attributes lack the class parameters or the tokens: %v", attrs)
	}
	if secrets["clientID"] != "abc" || secrets[tokensKey] != tokens {
		t.Errorf("secrets = %v, want the request's", secrets)
	}
	if rs[0].TargetPath != target || rs[0].Permission != "256" {
		t.Errorf("target_path %q permission %q, want %q and 256", rs[0].TargetPath, rs[0].Permission, target)
	}

	// Republish: asked again, with the versions of the previous reply.
	p.mustPublish(req)
	if rs = p.srv.Requests(); len(rs) != 2 || len(rs[1].CurrentObjectVersion) != 1 || rs[1].CurrentObjectVersion[0].Version != "3" {
		t.Fatalf("republish: %d calls, versions %v", len(rs), rs[len(rs)-1].CurrentObjectVersion)
	}

	// Without fsGroup: root's group, the modes as given.
	req2, target2 := p.inline(pod{ns: "team-a", name: "web-2"}, "secrets", map[string]string{"secretProviderClass": "db"}, nil)
	p.mustPublish(req2)
	fi, err := os.Stat(filepath.Join(target2, "username"))
	must(t, err)
	if fi.Mode().Perm() != 0o644 || owner(fi) != [2]uint32{0, 0} {
		t.Errorf("username %v owner %v, want 0644 root:root", fi.Mode(), owner(fi))
	}
	p.unpublish(req)
	p.unpublish(req2)
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target after unpublish: %v", err)
	}
}

func TestProviderPublishErrors(t *testing.T) {
	p := startProviderPlugin(t)
	p.writeClass("team-b", "theirs", "vault", `{"roleName": "b"}`)
	p.writeClass("team-a", "aws", "aws", `{"objects": "x"}`)
	p.writeClass("team-a", "evil", "../../../run/x", `{"a": "b"}`)
	cases := []struct {
		name  string
		attrs map[string]string
		code  codes.Code
		words []string
	}{
		{"with secretName", map[string]string{"secretProviderClass": "db", "secretName": "s"}, codes.InvalidArgument, []string{"secretName"}},
		{"Watch", map[string]string{"secretProviderClass": "db", "changeDetection": "Watch"}, codes.InvalidArgument, []string{"Watch"}},
		{"items", map[string]string{"secretProviderClass": "db", "items": "[]"}, codes.InvalidArgument, []string{"items"}},
		{"typo", map[string]string{"secretProviderClass": "db", "ttL": "1m"}, codes.InvalidArgument, []string{"ttL"}},
		{"bad class name", map[string]string{"secretProviderClass": "../db"}, codes.InvalidArgument, []string{"secretProviderClass"}},
		{"missing class", map[string]string{"secretProviderClass": "nope"}, codes.NotFound, []string{"team-a/nope"}},
		{"other namespace's class", map[string]string{"secretProviderClass": "theirs"}, codes.NotFound, []string{"team-a/theirs"}},
		{"socket missing", map[string]string{"secretProviderClass": "aws"}, codes.Unavailable, []string{`provider "aws"`}},
		{"bad provider name", map[string]string{"secretProviderClass": "evil"}, codes.InvalidArgument, []string{"provider name"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, target := p.inline(pod{ns: "team-a", name: "bad-" + itoa(i)}, "secrets", c.attrs, nil)
			err := p.publish(req)
			wantCode(t, err, c.code)
			for _, w := range c.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v does not say %q", err, w)
				}
			}
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("target left after a failed publish: %v", err)
			}
		})
	}
	replies := map[string]*v1alpha1.MountResponse{
		"hostile path": {Files: []*v1alpha1.File{{Path: "ok", Contents: []byte("x")}, {Path: "../../etc/cron.d/x", Contents: []byte("x")}}},
		"hostile mode": {Files: []*v1alpha1.File{{Path: "suid", Mode: 0o4755, Contents: []byte("x")}}},
		"error.code":   {Error: &v1alpha1.Error{Code: "VaultSealed"}},
	}
	for name, r := range replies {
		t.Run(name, func(t *testing.T) {
			p.srv.SetReply(r)
			req, target := p.inline(pod{ns: "team-a", name: strings.ReplaceAll(name, " ", "-")}, "secrets", map[string]string{"secretProviderClass": "db"}, nil)
			err := p.publish(req)
			if name == "error.code" {
				wantCode(t, err, codes.Unavailable)
				if !strings.Contains(err.Error(), "VaultSealed") {
					t.Errorf("%v does not name the code", err)
				}
			} else {
				wantCode(t, err, codes.FailedPrecondition)
				if !strings.Contains(err.Error(), `provider "vault"`) || !strings.Contains(err.Error(), "path") {
					t.Errorf("%v does not name provider and path", err)
				}
			}
			if n := mountCount(t, target); n != 0 {
				t.Errorf("%d mounts at the target of a refused reply", n)
			}
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("target left: %v", err)
			}
		})
	}
}

// Rotation follows within ttl + 1 s on the plugin's timer, and at once
// at a republish; an unchanged reply switches nothing.
func TestProviderRotation(t *testing.T) {
	p := startProviderPlugin(t)
	req, target := p.inline(pod{ns: "team-a", name: "timer"}, "secrets", map[string]string{"secretProviderClass": "db", "ttl": "1s"}, nil)
	p.mustPublish(req)
	p.srv.SetFiles(map[string]string{"db-password": "rotated"}, "v2")
	changed := time.Now()
	deadline := changed.Add(2 * time.Second) // ttl + 1 s
	for read(t, filepath.Join(target, "db-password")) != "rotated" {
		if time.Now().After(deadline) {
			t.Fatal("rotation not visible within ttl + 1 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("rotation visible after %v (ttl 1s)", time.Since(changed).Round(time.Millisecond))

	req2, target2 := p.inline(pod{ns: "team-a", name: "republish"}, "secrets", map[string]string{"secretProviderClass": "db", "ttl": "1h"}, nil)
	p.mustPublish(req2)
	data, err := os.Readlink(filepath.Join(target2, "..data"))
	must(t, err)
	calls := p.srv.Calls()
	p.mustPublish(req2) // the same files, new versions
	if p.srv.Calls() != calls+1 {
		t.Fatalf("a republish did not ask the provider")
	}
	if now, _ := os.Readlink(filepath.Join(target2, "..data")); now != data {
		t.Errorf("an unchanged reply switched ..data from %s to %s", data, now)
	}
	p.srv.SetFiles(map[string]string{"db-password": "again"}, "v3")
	p.mustPublish(req2)
	if got := read(t, filepath.Join(target2, "db-password")); got != "again" {
		t.Errorf("after the republish the file reads %q", got)
	}
	// A failed republish answers OK and keeps the last good files.
	p.srv.SetReply(&v1alpha1.MountResponse{Files: []*v1alpha1.File{{Path: "../x"}}})
	p.mustPublish(req2)
	if got := read(t, filepath.Join(target2, "db-password")); got != "again" {
		t.Errorf("after a refused reply the file reads %q", got)
	}
}

// 20 Pods of one service account: one Mount call at publish, one per
// refresh.
func TestProviderTwentyPods(t *testing.T) {
	p := startProviderPlugin(t)
	var targets []string
	for i := range 20 {
		req, target := p.inline(pod{ns: "team-a", name: "replica-" + itoa(i)}, "secrets",
			map[string]string{"secretProviderClass": "db", "ttl": "1s"}, map[string]string{tokensKey: `{"vault":{"token":"t` + itoa(i) + `"}}`})
		p.mustPublish(req)
		targets = append(targets, target)
	}
	if n := p.srv.Calls(); n != 1 {
		t.Fatalf("20 publishes: %d Mount calls, want 1", n)
	}
	p.srv.SetFiles(map[string]string{"db-password": "rotated"}, "v2")
	for _, target := range targets {
		waitFor(t, "rotation at "+target, func() bool { return read(t, filepath.Join(target, "db-password")) == "rotated" })
	}
	if n := p.srv.Calls(); n != 2 {
		t.Fatalf("one refresh for 20 volumes: %d Mount calls in all, want 2", n)
	}
	if last := p.srv.Requests()[1]; !strings.Contains(last.TargetPath, "replica-19") || !strings.Contains(last.Secrets, `t19`) {
		t.Errorf("the shared call carries %s, not the latest volume's request", last.TargetPath)
	}
}

// Neither the provider's files nor the tokens and nodePublishSecretRef
// data sent to it reach the log, nor does the provider's own error text.
func TestProviderNoSecretInLogs(t *testing.T) {
	p := startProviderPlugin(t)
	p.srv.SetFiles(map[string]string{"db-password": "FILE-VALUE-1"}, "1")
	req, _ := p.inline(pod{ns: "team-a", name: "quiet"}, "secrets", map[string]string{"secretProviderClass": "db", "ttl": "1h"},
		map[string]string{tokensKey: `{"vault":{"token":"TOKEN-VALUE-2"}}`, "clientSecret": "REF-VALUE-3"})
	p.mustPublish(req)
	p.srv.SetError(status.Error(codes.PermissionDenied, "PROVIDER-TEXT-4 quoting TOKEN-VALUE-2"))
	p.mustPublish(req) // a failed republish is logged
	p.srv.SetFiles(map[string]string{"db-password": "FILE-VALUE-5"}, "2")
	p.mustPublish(req)
	logs := p.logs.String()
	if !strings.Contains(logs, "republish kept the last good files") {
		t.Fatal("the failed republish was not logged")
	}
	for _, v := range []string{"FILE-VALUE-1", "TOKEN-VALUE-2", "REF-VALUE-3", "PROVIDER-TEXT-4", "FILE-VALUE-5"} {
		if strings.Contains(logs, v) {
			t.Errorf("the log holds %s", v)
		}
	}
}
