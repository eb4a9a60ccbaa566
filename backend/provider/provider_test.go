package provider

import (
	"context"
	"maps"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/fake"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/secretfs/secretfs/backend/provider/providertest"
	"github.com/secretfs/secretfs/metrics"
)

// The Mount request is the Secrets Store CSI Driver's, field by field (as
// its NodePublishVolume and provider client build it), and Version comes
// once per connection.
func TestMountRequestIsTheDrivers(t *testing.T) {
	e := newEnv(t, ClientOptions{})
	req := request("pod-1", StrategyGet, 0)
	req.Secrets["clientSecret"] = "from-nodePublishSecretRef"
	req.DefaultMode = 0o400
	m, v := e.mustJoin(req)
	if got := v.current()["db-password"]; got != "s3cret:0644" {
		t.Fatalf("volume shows %q", got)
	}
	rs := e.srv.Requests()
	if len(rs) != 1 {
		t.Fatalf("%d Mount calls, want 1", len(rs))
	}
	r := rs[0]
	wantAttrs := map[string]string{"roleName": "app", "vaultAddress": "http://vault:8200", tokensKey: req.Secrets[tokensKey]}
	maps.Copy(wantAttrs, req.Context)
	if got := decode(t, r.Attributes); !maps.Equal(got, wantAttrs) {
		t.Errorf("attributes = %v\nwant %v", got, wantAttrs)
	}
	if got := decode(t, r.Secrets); !maps.Equal(got, req.Secrets) {
		t.Errorf("secrets = %v, want %v", got, req.Secrets)
	}
	if r.TargetPath != req.Target {
		t.Errorf("target_path = %q, want %q", r.TargetPath, req.Target)
	}
	if r.Permission != "256" { // json.Marshal(os.FileMode(0400))
		t.Errorf("permission = %q, want 256", r.Permission)
	}
	if len(r.CurrentObjectVersion) != 0 {
		t.Errorf("first request carries versions %v", r.CurrentObjectVersion)
	}

	// A class's parameter is overlaid by the volume context.
	e.writeClass("team-a", "db", "vault", map[string]string{"roleName": "app", "csi.storage.k8s.io/pod.name": "forged"})
	e.srv.SetFiles(map[string]string{"db-password": "s3cret", "b-user": "admin"}, "v2")
	if err := m.Refresh(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r = e.srv.Requests()[1]
	if got := decode(t, r.Attributes)["csi.storage.k8s.io/pod.name"]; got != "pod-1" {
		t.Errorf("pod.name = %q: the volume context must win over parameters", got)
	}
	// current_object_version is what the previous reply said, sorted.
	var got []string
	for _, ov := range r.CurrentObjectVersion {
		got = append(got, ov.Id+"="+ov.Version)
	}
	if strings.Join(got, ",") != "db-password=v1" {
		t.Errorf("current_object_version = %v, want db-password=v1", got)
	}
	if n := e.srv.VersionCalls(); n != 1 {
		t.Errorf("%d Version calls for one connection, want 1", n)
	}
	if v.changes != 1 || v.current()["b-user"] != "admin:0644" {
		t.Errorf("after the changed reply: %d changes, %v", v.changes, v.current())
	}

	// No nodePublishSecretRef and no tokens: secrets is "{}", as the driver sends it.
	req2 := request("pod-2", StrategyGet, 0)
	req2.Secrets = nil
	e.mustJoin(req2)
	if s := e.srv.Requests()[2].Secrets; s != "{}" {
		t.Errorf("secrets = %q, want {}", s)
	}
}

// The module's own mock provider accepts our request (it unmarshals
// attributes, secrets and permission as the driver sends them).
func TestMockCSIProviderServer(t *testing.T) {
	e := newEnv(t, ClientOptions{})
	e.srv.Stop()
	mock, err := fake.NewMocKCSIProviderServer(filepath.Join(e.socks, "vault.sock"))
	if err != nil {
		t.Fatal(err)
	}
	mock.SetFiles([]*v1alpha1.File{{Path: "dir/cert.pem", Mode: 0o440, Contents: []byte("PEM")}, {Path: "key", Contents: []byte("K")}})
	mock.SetObjects(map[string]string{"secret/cert": "3"})
	if err := mock.Start(); err != nil {
		t.Fatal(err)
	}
	defer mock.Stop()
	m, v := e.mustJoin(request("pod-1", StrategyCache, time.Hour))
	want := map[string]string{"dir/cert.pem": "PEM:0440", "key": "K:0644"} // mode 0: the default
	if got := v.current(); !maps.Equal(got, want) {
		t.Fatalf("volume shows %v, want %v", got, want)
	}
	mock.SetProviderErrorCode("GRPCProviderError")
	wantErr(t, m.Refresh(context.Background(), request("pod-1", StrategyCache, time.Hour)), codes.Unavailable, `provider "vault"`, "GRPCProviderError")
	if got := v.current(); !maps.Equal(got, want) {
		t.Fatalf("after a failed refresh the volume shows %v, want the last good %v", got, want)
	}
	mock.SetProviderErrorCode("")
	mock.SetReturnError(status.Error(codes.PermissionDenied, "role app may not read db"))
	wantErr(t, m.Refresh(context.Background(), request("pod-1", StrategyCache, time.Hour)), codes.Unavailable, `provider "vault"`, "PermissionDenied")
}

// Every reply a secret volume's items could not produce is refused,
// naming the provider and the path; nothing is mounted.
func TestHostileRepliesRefused(t *testing.T) {
	e := newEnv(t, ClientOptions{})
	file := func(path string, mode int32) *v1alpha1.File {
		return &v1alpha1.File{Path: path, Mode: mode, Contents: []byte("x")}
	}
	cases := map[string][]*v1alpha1.File{
		"../escape":        {file("../escape", 0)},
		"/etc/passwd":      {file("/etc/passwd", 0)},
		"a/../../b":        {file("a/../../b", 0)},
		"..data":           {file("..data", 0)},
		"..2026_01_01":     {file("..2026_01_01/x", 0)},
		"empty":            {file("", 0)},
		"a//b":             {file("a//b", 0)},
		"./a":              {file("./a", 0)},
		"nul":              {file("a\x00b", 0)},
		"long element":     {file(strings.Repeat("x", 256), 0)},
		"long path":        {file(strings.Repeat("abcdefg/", 512)+"x", 0)},
		"mode 01000":       {file("setuid", 0o4755)},
		"mode -1":          {file("neg", -1)},
		"duplicate":        {file("a", 0), file("a", 0o400)},
		"file is a folder": {file("a", 0), file("a/b", 0)},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			e.srv.SetReply(&v1alpha1.MountResponse{Files: files})
			mounted := false
			_, err := e.pool.Join(context.Background(), request("pod-1", StrategyGet, 0), func(*Files) error { mounted = true; return nil }, func(*Files) {}, nil)
			wantErr(t, err, codes.FailedPrecondition, `provider "vault"`, "path")
			if mounted {
				t.Error("a refused reply was mounted")
			}
		})
	}
	if len(e.pool.entries) != 0 {
		t.Errorf("%d entries left by failed joins", len(e.pool.entries))
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, ClientOptions{MaxRecvBytes: 64 << 10, Timeout: 300 * time.Millisecond})
	join := func(class string) error {
		req := request("pod-1", StrategyGet, 0)
		req.Class = class
		_, _, err := e.join(req)
		return err
	}
	t.Run("provider gRPC error", func(t *testing.T) {
		e.srv.SetError(status.Error(codes.PermissionDenied, "token tok-pod-1 refused"))
		err := join("db")
		wantErr(t, err, codes.Unavailable, `provider "vault"`, "PermissionDenied")
		if strings.Contains(err.Error(), "tok-pod-1") {
			t.Errorf("the provider's own message reached the status: %v", err)
		}
	})
	t.Run("reply error.code", func(t *testing.T) {
		e.srv.SetReply(&v1alpha1.MountResponse{Error: &v1alpha1.Error{Code: "SecretNotFound"}})
		wantErr(t, join("db"), codes.Unavailable, `provider "vault"`, "SecretNotFound")
	})
	t.Run("oversized reply", func(t *testing.T) {
		e.srv.SetFiles(map[string]string{"big": strings.Repeat("x", 100<<10)}, "v1")
		wantErr(t, join("db"), codes.ResourceExhausted, `provider "vault"`, "65536")
	})
	t.Run("larger than a Secret is fine", func(t *testing.T) {
		big := newEnv(t, ClientOptions{})
		big.srv.SetFiles(map[string]string{"big": strings.Repeat("x", 2<<20)}, "v1")
		_, v := big.mustJoin(request("pod-1", StrategyGet, 0))
		if len(v.current()["big"]) != 2<<20+len(":0644") {
			t.Error("a 2 MiB reply was not served")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		e.srv.SetFiles(map[string]string{"a": "b"}, "v1")
		e.srv.SetDelay(2 * time.Second)
		defer e.srv.SetDelay(0)
		wantErr(t, join("db"), codes.Unavailable, `provider "vault"`, "within")
	})
	t.Run("socket missing", func(t *testing.T) {
		e.writeClass("team-a", "aws", "aws", map[string]string{"objects": "x"})
		wantErr(t, join("aws"), codes.Unavailable, `provider "aws"`, "aws.sock")
	})
	t.Run("class missing", func(t *testing.T) {
		wantErr(t, join("nope"), codes.NotFound, "team-a/nope")
	})
	t.Run("class of another namespace", func(t *testing.T) {
		e.writeClass("team-b", "theirs", "vault", map[string]string{"roleName": "b"})
		wantErr(t, join("theirs"), codes.NotFound, "team-a/theirs")
	})
	t.Run("bad provider name", func(t *testing.T) {
		for _, name := range []string{"../../run/x", strings.Repeat("p", 31), "", "a.b"} {
			e.writeClass("team-a", "bad", name, map[string]string{"a": "b"})
			wantErr(t, join("bad"), codes.InvalidArgument, "must match")
		}
	})
	if e.srv.Calls() == 0 {
		t.Fatal("the provider was never asked")
	}
}

// Requests are counted by provider and code, with their latency; the
// files served are a gauge that goes back to zero with the last volume.
func TestMetrics(t *testing.T) {
	e := newEnv(t, ClientOptions{})
	e.writeClass("team-a", "db", "metricsprov", map[string]string{"a": "b"})
	srv := providertest.Start(t, e.socks, "metricsprov")
	srv.SetFiles(map[string]string{"a": "1", "b": "2", "c/d": "3"}, "v1")
	codes4 := []string{"OK", "error.code=Throttled", "Unavailable", "FailedPrecondition"}
	before := map[string]float64{}
	for _, c := range codes4 {
		before[c] = testutil.ToFloat64(metrics.ProviderRequests.WithLabelValues("metricsprov", c))
	}
	req := request("pod-1", StrategyCache, time.Hour)
	m, _ := e.mustJoin(req)
	srv.SetReply(&v1alpha1.MountResponse{Error: &v1alpha1.Error{Code: "Throttled"}})
	m.Refresh(context.Background(), req)
	srv.SetError(status.Error(codes.NotFound, "no such secret"))
	m.Refresh(context.Background(), req)
	srv.SetReply(&v1alpha1.MountResponse{Files: []*v1alpha1.File{{Path: "/abs"}}})
	m.Refresh(context.Background(), req)
	for _, code := range codes4 {
		if got := testutil.ToFloat64(metrics.ProviderRequests.WithLabelValues("metricsprov", code)) - before[code]; got != 1 {
			t.Errorf("requests{code=%s} grew by %v, want 1", code, got)
		}
	}
	if got := testutil.ToFloat64(metrics.ProviderFiles.WithLabelValues("metricsprov")); got != 3 {
		t.Errorf("files served = %v, want 3", got)
	}
	if n := testutil.CollectAndCount(metrics.ProviderSeconds); n == 0 {
		t.Error("no latency observed")
	}
	m.Close()
	if got := testutil.ToFloat64(metrics.ProviderFiles.WithLabelValues("metricsprov")); got != 0 {
		t.Errorf("files served after the last volume = %v, want 0", got)
	}
}

// A provider that restarts gets a new connection and a new Version.
func TestVersionOncePerConnection(t *testing.T) {
	e := newEnv(t, ClientOptions{Timeout: time.Second})
	req := request("pod-1", StrategyGet, 0)
	m, _ := e.mustJoin(req)
	for range 3 {
		if err := m.Refresh(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.srv.VersionCalls(); n != 1 {
		t.Fatalf("%d Version calls over 4 Mounts, want 1", n)
	}
	e.srv.Stop()
	wantErr(t, m.Refresh(context.Background(), req), codes.Unavailable, `provider "vault"`)
	again := providertest.Start(t, e.socks, "vault")
	again.SetFiles(map[string]string{"db-password": "s3cret"}, "v1")
	if err := m.Refresh(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if n := again.VersionCalls(); n != 1 || again.Calls() != 1 {
		t.Fatalf("new connection: %d Version, %d Mount calls, want 1 and 1", n, again.Calls())
	}
}

// 20 Pods of one service account share one call per refresh; the shared
// call carries the most recently published volume's request.
func TestSharedCalls(t *testing.T) {
	e := newEnv(t, ClientOptions{})
	const ttl = 400 * time.Millisecond
	var vols []*vol
	for i := range 20 {
		_, v := e.mustJoin(request(podName(i), StrategyCache, ttl))
		vols = append(vols, v)
	}
	if n := e.srv.Calls(); n != 1 {
		t.Fatalf("20 publishes within the ttl: %d Mount calls, want 1", n)
	}
	// Rotation: the reply changes, the timer's refresh brings it to all.
	e.srv.SetFiles(map[string]string{"db-password": "rotated"}, "v2")
	start := time.Now()
	for i, v := range vols {
		select {
		case <-v.gotFile:
		case <-time.After(ttl + time.Second - time.Since(start)):
			t.Fatalf("volume %d did not follow the rotation within ttl + 1 s", i)
		}
		if got := v.current()["db-password"]; got != "rotated:0644" {
			t.Fatalf("volume %d shows %q", i, got)
		}
	}
	if n := e.srv.Calls(); n != 2 {
		t.Fatalf("after one refresh: %d Mount calls, want 2", n)
	}
	last := e.srv.Requests()[1]
	if last.TargetPath != request(podName(19), StrategyCache, ttl).Target || !strings.Contains(last.Attributes, "tok-"+podName(19)) {
		t.Errorf("the shared call carries target %s, not the latest volume's", last.TargetPath)
	}
	// Another service account, other nodePublishSecretRef contents: never
	// shared.
	other := request("pod-x", StrategyCache, ttl)
	other.ServiceAccount = "batch"
	e.mustJoin(other)
	withRef := request("pod-y", StrategyCache, ttl)
	withRef.Secrets["clientSecret"] = "b"
	e.mustJoin(withRef)
	if n := len(e.pool.entries); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
}

func podName(i int) string { return "pod-" + string(rune('a'+i)) }

// An unchanged reply makes no switch, but its object versions are sent
// with the next request.
func TestUnchangedReply(t *testing.T) {
	e := newEnv(t, ClientOptions{})
	req := request("pod-1", StrategyCache, time.Hour)
	m, v := e.mustJoin(req)
	e.srv.SetFiles(map[string]string{"db-password": "s3cret"}, "v7")
	for range 2 {
		if err := m.Refresh(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if v.changes != 0 {
		t.Errorf("%d switches for unchanged files", v.changes)
	}
	rs := e.srv.Requests()
	if ov := rs[2].CurrentObjectVersion; len(ov) != 1 || ov[0].Version != "v7" {
		t.Errorf("current_object_version after an unchanged reply = %v, want v7", ov)
	}
}

// A failed refresh keeps the last good files and is counted; the last
// volume to leave wipes them.
func TestFailedRefreshKeepsFiles(t *testing.T) {
	e := newEnv(t, ClientOptions{})
	req := request("pod-1", StrategyCache, time.Hour)
	m, v := e.mustJoin(req)
	before := testutil.ToFloat64(metrics.ProviderRefreshErrors.WithLabelValues("vault"))
	e.srv.SetError(status.Error(codes.Unavailable, "vault sealed"))
	wantErr(t, m.Refresh(context.Background(), req), codes.Unavailable, "Unavailable")
	if got := v.current()["db-password"]; got != "s3cret:0644" {
		t.Errorf("volume shows %q after a failed refresh", got)
	}
	if d := testutil.ToFloat64(metrics.ProviderRefreshErrors.WithLabelValues("vault")) - before; d != 1 {
		t.Errorf("refresh errors counted %v, want 1", d)
	}
	// A Get volume joining an entry with good files while the provider
	// fails gets the error: a publish fails on it.
	e.srv.SetFiles(map[string]string{"db-password": "s3cret"}, "v1")
	g, _ := e.mustJoin(request("pod-3", StrategyGet, 0))
	e.srv.SetError(status.Error(codes.Unavailable, "vault sealed"))
	_, _, err := e.join(request("pod-4", StrategyGet, 0))
	wantErr(t, err, codes.Unavailable, `provider "vault"`)
	g.Close()
	files := m.e.files
	m.Close()
	if len(e.pool.entries) != 0 {
		t.Error("entry left after its last volume")
	}
	for _, f := range files.files {
		if strings.Trim(string(f.Data), "\x00") != "" {
			t.Error("the files' bytes were not wiped")
		}
	}
}

// Every member of an entry hears each call's outcome, made for whichever
// volume: the error of a failed one (the files stay), nil for a good one
// even with equal files (no switch), so each volume can report a failure
// and its recovery. A join that fails tells the members already there.
func TestRefreshOutcomesTold(t *testing.T) {
	e := newEnv(t, ClientOptions{})
	req := request("pod-1", StrategyGet, 0)
	m, v1 := e.mustJoin(req)
	_, v2 := e.mustJoin(request("pod-2", StrategyGet, 0)) // its call tells pod-1
	if got := v1.told(); len(got) != 1 || got[0] != nil {
		t.Fatalf("pod-1 told %v after pod-2 joined, want one nil", got)
	}
	v1.outcomes = nil
	e.srv.SetError(status.Error(codes.Unavailable, "vault sealed"))
	_ = m.Refresh(context.Background(), req)
	_, _, err := e.join(request("pod-3", StrategyGet, 0))
	wantErr(t, err, codes.Unavailable, `provider "vault"`)
	e.srv.SetFiles(map[string]string{"db-password": "s3cret"}, "v1") // the files shown
	if err := m.Refresh(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	for i, v := range []*vol{v1, v2} {
		got := v.told()
		if len(got) != 3 || got[0] == nil || got[1] == nil || got[2] != nil {
			t.Errorf("volume %d told %v, want two errors then nil", i+1, got)
		}
		if v.changes != 0 {
			t.Errorf("volume %d switched %d times for equal files", i+1, v.changes)
		}
	}
}

// noVersion is a provider built without Version (only Mount): the driver
// never needs Version to mount, so neither do we.
type noVersion struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
}

func (noVersion) Mount(context.Context, *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	return &v1alpha1.MountResponse{Files: []*v1alpha1.File{{Path: "a", Contents: []byte("b")}}}, nil
}

func TestProviderWithoutVersion(t *testing.T) {
	e := newEnv(t, ClientOptions{})
	e.srv.Stop()
	ln, err := net.Listen("unix", filepath.Join(e.socks, "vault.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(srv, noVersion{})
	go srv.Serve(ln)
	defer srv.Stop()
	_, v := e.mustJoin(request("pod-1", StrategyGet, 0))
	if got := v.current()["a"]; got != "b:0644" {
		t.Errorf("volume shows %q", got)
	}
}

// Joins, refreshes, timer ticks and closes racing on one entry (run with
// -race): every join gets files, and the pool ends empty.
func TestConcurrentVolumes(t *testing.T) {
	e := newEnv(t, ClientOptions{})
	const ttl = 20 * time.Millisecond
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			req := request(podName(i%20)+itoa(i), StrategyCache, ttl)
			m, v, err := e.join(req)
			if err != nil {
				t.Errorf("join %d: %v", i, err)
				return
			}
			if v.current()["db-password"] == "" {
				t.Errorf("join %d: no files", i)
			}
			for j := range 5 {
				if j == 2 {
					e.srv.SetFiles(map[string]string{"db-password": "r" + itoa(i)}, itoa(i))
				}
				m.Refresh(context.Background(), req)
				time.Sleep(ttl / 2)
			}
			m.Close()
		})
	}
	wg.Wait()
	e.pool.mu.Lock()
	defer e.pool.mu.Unlock()
	if n := len(e.pool.entries); n != 0 {
		t.Errorf("%d entries left", n)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
