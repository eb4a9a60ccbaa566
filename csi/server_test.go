package csi

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func TestIdentityAndController(t *testing.T) {
	p := startPlugin(t)
	ctx := context.Background()
	info, err := p.ident.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	must(t, err)
	if info.Name != DriverName {
		t.Errorf("name %q", info.Name)
	}
	capv := []*csi.VolumeCapability{{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
	}}
	params := map[string]string{"secretName": "s", "secretNamespace": "ops", podInfoPrefix + "pvc/name": "x"}
	v1, err := p.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: capv, Parameters: params})
	must(t, err)
	v2, err := p.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: capv, Parameters: params})
	must(t, err)
	if v1.Volume.VolumeId != v2.Volume.VolumeId || v1.Volume.CapacityBytes != 0 {
		t.Errorf("not idempotent: %v %v", v1, v2)
	}
	if _, has := v1.Volume.VolumeContext[podInfoPrefix+"pvc/name"]; has || v1.Volume.VolumeContext["secretName"] != "s" {
		t.Errorf("volume_context %v", v1.Volume.VolumeContext)
	}
	_, err = p.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-2", VolumeCapabilities: capv, Parameters: map[string]string{"secretname": "s"}})
	wantCode(t, err, codes.InvalidArgument)
	_, err = p.ctrl.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "foreign", VolumeCapabilities: capv})
	wantCode(t, err, codes.NotFound)
	vr, err := p.ctrl.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: v1.Volume.VolumeId, VolumeCapabilities: capv})
	if err != nil || vr.Confirmed == nil {
		t.Errorf("validate: %v %v", vr, err)
	}
	_, err = p.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "unknown"})
	must(t, err)
	_, err = p.ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{})
	wantCode(t, err, codes.Unimplemented)

	// The Controller's volume, published as kubelet does for a PV: the
	// admin's secretNamespace holds.
	p.writeSecret("ops", "s", map[string]string{"k": "v"})
	req, target := p.inline(pod{ns: "team", name: "pv"}, "pv", v1.Volume.VolumeContext, nil)
	req.VolumeId = v1.Volume.VolumeId
	delete(req.VolumeContext, ephemeralKey)
	p.mustPublish(req)
	wantFiles(t, target, map[string]string{"k": "v"})
}

func TestRegistration(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "plugins_registry")
	p := startFakePlugin(t, func(_ *Config, o *ServerOptions) { o.RegistrationDir = reg })
	sock := RegistrationSocket(reg, DriverName)
	waitFor(t, "registration socket", func() bool { _, err := os.Stat(sock); return err == nil })
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer conn.Close()
	c := registerapi.NewRegistrationClient(conn)
	info, err := c.GetInfo(context.Background(), &registerapi.InfoRequest{})
	must(t, err)
	// The socket exists from bind(2), before listenUnix sets its mode;
	// once it answers, the mode is set.
	fi, err := os.Stat(sock)
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v", fi.Mode())
	}
	if info.Type != registerapi.CSIPlugin || info.Name != DriverName || info.Endpoint != p.sock || strings.Join(info.SupportedVersions, ",") != "1.0.0" {
		t.Errorf("GetInfo = %v", info)
	}
	_, err = c.NotifyRegistrationStatus(context.Background(), &registerapi.RegistrationStatus{PluginRegistered: true})
	must(t, err)
}

// A second server refuses a socket that is live; a stale one is replaced.
func TestSocketTakeover(t *testing.T) {
	p := startFakePlugin(t)
	if _, err := listenUnix(p.sock); err == nil {
		t.Error("a live socket was taken over")
	}
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := listenUnix(stale)
	must(t, err)
	ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	ln.Close()
	ln, err = listenUnix(stale)
	must(t, err)
	ln.Close()
}

// No secret value, nor the pod's token, ever reaches a log line: not on
// publish, republish, error paths or unpublish, at debug level.
func TestNoSecretInLogs(t *testing.T) {
	const value, token = "s3cr3t-VALUE-4242", "eyJhbGciOi-POD-TOKEN"
	p := startPlugin(t, func(c *Config, _ *ServerOptions) { c.PodTokens = true })
	p.writeSecret("default", "db", map[string]string{"password": value})
	tokens := `{"":{"token":"` + token + `","expirationTimestamp":"2030-01-01T00:00:00Z"}}`

	a, ta := p.inline(pod{ns: "default", name: "a", tokens: tokens}, "v", map[string]string{"secretName": "db"}, map[string]string{"backend-cred": value})
	p.mustPublish(a)
	p.mustPublish(a)
	wantFiles(t, ta, map[string]string{"password": value})
	b, tb := p.inline(pod{ns: "default", name: "b", tokens: tokens}, "v", map[string]string{}, map[string]string{"password": value})
	p.mustPublish(b)
	wantFiles(t, tb, map[string]string{"password": value})
	b.Secrets = map[string]string{"password": value + "2", "bad key!": value}
	p.mustPublish(b) // refused data: logged, kept
	c, _ := p.inline(pod{ns: "default", name: "c", tokens: tokens}, "v", map[string]string{"base64Keys": "password"}, map[string]string{"password": value})
	wantCode(t, p.publish(c), codes.FailedPrecondition)
	d, _ := p.inline(pod{ns: "default", name: "d", tokens: "not json " + token}, "v", map[string]string{"secretName": "db"}, nil)
	wantCode(t, p.publish(d), codes.InvalidArgument)
	// serviceAccountTokenInSecrets: the tokens arrive in `secrets` and are
	// never shown as a file.
	e, te := p.inline(pod{ns: "default", name: "e"}, "v", map[string]string{}, map[string]string{"password": value, tokensKey: tokens})
	p.mustPublish(e)
	wantFiles(t, te, map[string]string{"password": value})
	p.unpublish(a)
	p.unpublish(b)

	logs := p.logs.String()
	if !strings.Contains(logs, "NodePublishVolume") || !strings.Contains(logs, "volume published") {
		t.Fatalf("the log misses the calls:\n%s", logs)
	}
	for _, s := range []string{value, token} {
		if strings.Contains(logs, s) {
			t.Errorf("%q appears in the log:\n%s", s, logs)
		}
	}
}

// A volume_context over 256 KiB is refused before anything reads it, and
// the request log shows neither it nor more than 256 bytes of any value.
func TestHugeVolumeContext(t *testing.T) {
	p := startFakePlugin(t)
	p.writeSecret("default", "s", map[string]string{"k": "v"})
	const mark = "HUGE-attribute-value-"
	huge := strings.Repeat(mark, (300<<10)/len(mark))
	req, target := p.inline(pod{ns: "default", name: "huge"}, "v", map[string]string{"secretName": "s", "items": huge}, nil)
	err := p.publish(req)
	wantCode(t, err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "volume_context") || strings.Contains(msg, mark) {
		t.Errorf("message %q: want the size named, never the value", msg)
	}
	wantAbsent(t, target)
	// Many small keys add up the same way.
	many, _ := p.inline(pod{ns: "default", name: "many"}, "v", map[string]string{"secretName": "s"}, nil)
	for i := range 30000 {
		many.VolumeContext[podInfoPrefix+"k"+itoa(i)] = mark
	}
	wantCode(t, p.publish(many), codes.InvalidArgument)

	// Under the limit, a long value is logged cut at 256 bytes.
	long := strings.Repeat(mark, (10<<10)/len(mark))
	ok, _ := p.inline(pod{ns: "default", name: "long"}, "v", map[string]string{"secretName": "s"}, nil)
	ok.VolumeContext[podInfoPrefix+"note"] = long
	p.mustPublish(ok)
	if n := len(p.mk.made()); n != 1 {
		t.Errorf("%d volumes made, want the one under the limit", n)
	}

	logs := p.logs.String()
	if !strings.Contains(logs, "(not shown)") {
		t.Errorf("the log does not say the huge volume_context was left out:\n%.2000s", logs)
	}
	if n := strings.Count(logs, mark); n > 3*(256/len(mark)+1) {
		t.Errorf("the log holds %d copies of the value (%d bytes in all); want only the first 256 bytes of the long one", n, len(logs))
	}
	for _, line := range strings.Split(logs, "\n") {
		if len(line) > 16<<10 {
			t.Errorf("a log line of %d bytes: %.300s…", len(line), line)
		}
	}
}

// One request makes one log line of bounded size, however many keys or
// parameters it sends, and no secret or token reaches it.
func TestRequestLogBounded(t *testing.T) {
	vc := map[string]string{tokensKey: `{"":{"token":"SECRET-TOKEN-XYZ","expirationTimestamp":"x"}}`, "secretName": "s"}
	for i := 0; i < 3000; i++ { // some 240 KiB: under the volume_context limit
		vc["k"+itoa(i)+strings.Repeat("x", 70)] = "v"
	}
	req := &csi.NodePublishVolumeRequest{VolumeId: "v", TargetPath: "/x", VolumeContext: vc,
		Secrets: map[string]string{"password": "SECRET-PW", tokensKey: "SECRET-TOKEN-2"}}
	out := sanitize(req)
	if strings.Contains(out, "SECRET") {
		t.Errorf("a secret or token in the request log")
	}
	if len(out) > maxLoggedRequest+64 || !strings.Contains(out, "more keys") {
		t.Errorf("volume_context of %d bytes logged in %d bytes, want at most %d and the rest counted", contextSize(vc), len(out), maxLoggedRequest)
	}
	cr := &csi.CreateVolumeRequest{Name: "n", Parameters: map[string]string{}}
	for i := 0; i < 30000; i++ {
		cr.Parameters["p"+itoa(i)+strings.Repeat("x", 100)] = strings.Repeat("y", 100)
	}
	if out := sanitize(cr); len(out) > maxLoggedRequest+64 || !strings.Contains(out, "more keys") {
		t.Errorf("CreateVolume parameters logged in %d bytes, want at most %d and the rest counted", len(out), maxLoggedRequest)
	}
	// A small request is shown whole.
	small := &csi.CreateVolumeRequest{Name: "n", Parameters: map[string]string{"a": "b"}}
	if out := sanitize(small); strings.Contains(out, "not shown") || !strings.Contains(out, `"a"`) {
		t.Errorf("small request logged as %s", out)
	}
}
