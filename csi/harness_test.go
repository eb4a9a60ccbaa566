package csi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/secretfs/secretfs/backend/file"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/sanity/needroot"
	"github.com/secretfs/secretfs/sanity/syncbuf"
)

// plugin is one driver served on a real unix socket, reading a real file
// source in a temp folder, as `secretfs csi --source file:DIR` does.
type plugin struct {
	t      *testing.T
	dir    string // temp root; kubelet's root-dir stand-in
	src    string // the file source folder
	sock   string
	logs   *syncbuf.Buffer
	d      *Driver
	node   csi.NodeClient
	ctrl   csi.ControllerClient
	ident  csi.IdentityClient
	regDir string
	// fm and mk are the fakes of a startFakePlugin (nil otherwise).
	fm *fakeMounter
	mk *fakeMaker
}

type pluginOpt func(*Config, *ServerOptions)

// startPlugin starts a plugin that mounts FUSE (root only).
func startPlugin(t *testing.T, opts ...pluginOpt) *plugin {
	t.Helper()
	requireFUSE(t)
	return start(t, nil, nil, opts...)
}

// startFakePlugin starts a plugin whose mounts are pretended (fake_test.go):
// the rules run as on a node, as any user, and nothing is mounted.
func startFakePlugin(t *testing.T, opts ...pluginOpt) *plugin {
	t.Helper()
	fm := newFakeMounter(t)
	return start(t, fm, &fakeMaker{m: fm}, opts...)
}

func start(t *testing.T, fm *fakeMounter, mk *fakeMaker, opts ...pluginOpt) *plugin {
	t.Helper()
	p := &plugin{t: t, dir: t.TempDir(), logs: &syncbuf.Buffer{}, fm: fm, mk: mk}
	p.src = filepath.Join(p.dir, "secrets")
	must(t, os.Mkdir(p.src, 0o700))
	b, err := file.New(p.src)
	must(t, err)
	log := slog.New(slog.NewJSONHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := cache.New(b, cache.Options{Logger: log})
	cfg := Config{NodeID: "node-1", Cache: c, Logger: log, MountRoot: p.dir}
	if fm != nil {
		cfg.Mounter, cfg.Volumes = fm, mk
	}
	p.sock = filepath.Join(p.dir, "plugins", DriverName, "csi.sock")
	sopts := ServerOptions{Endpoint: "unix://" + p.sock}
	for _, o := range opts {
		o(&cfg, &sopts)
	}
	p.regDir = sopts.RegistrationDir
	p.d, err = New(cfg)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(p.d, sopts).Run(ctx) }()
	waitFor(t, "socket", func() bool { _, err := os.Stat(p.sock); return err == nil })
	conn, err := grpc.NewClient("unix://"+p.sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The socket file exists a moment before the server listens.
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	must(t, err)
	p.node, p.ctrl, p.ident = csi.NewNodeClient(conn), csi.NewControllerClient(conn), csi.NewIdentityClient(conn)
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
		p.d.UnmountAll()
		c.Close()
	})
	return p
}

// writeSecret writes a Secret manifest into the file source.
func (p *plugin) writeSecret(ns, name string, data map[string]string) {
	p.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\ndata:\n", name, ns)
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(&b, "  %q: %s\n", k, base64.StdEncoding.EncodeToString([]byte(data[k])))
	}
	p.writeFile(ns+"-"+name+".yaml", b.String())
}

func (p *plugin) writeFile(name, content string) {
	p.t.Helper()
	tmp := filepath.Join(p.src, "."+name+".tmp")
	must(p.t, os.WriteFile(tmp, []byte(content), 0o600))
	must(p.t, os.Rename(tmp, filepath.Join(p.src, name)))
}

// pod describes what kubelet knows when it publishes an inline volume.
type pod struct {
	ns, name, uid string
	fsGroup       string // volume_mount_group
	tokens        string // serviceAccount.tokens JSON
	sa            string // serviceAccount.name; default "default"
	noPodInfo     bool   // a CSIDriver without podInfoOnMount
}

// inline is NodePublishVolume exactly as kubelet sends it for a CSI inline
// volume: volume id csi-<sha256(podUID+volume name)>, pod info keys,
// ephemeral "true", only the target's parent created.
func (p *plugin) inline(pd pod, volName string, attrs map[string]string, secrets map[string]string) (*csi.NodePublishVolumeRequest, string) {
	p.t.Helper()
	if pd.uid == "" {
		pd.uid = pd.ns + "-" + pd.name + "-uid"
	}
	sum := sha256.Sum256([]byte(pd.uid + volName))
	parent := filepath.Join(p.dir, "pods", pd.uid, "volumes", "kubernetes.io~csi", volName)
	must(p.t, os.MkdirAll(parent, 0o750))
	vc := map[string]string{}
	for k, v := range attrs {
		vc[k] = v
	}
	if !pd.noPodInfo {
		vc[podNameKey], vc[podNamespaceKey], vc[podUIDKey] = pd.name, pd.ns, pd.uid
		vc[podSAKey], vc[ephemeralKey] = "default", "true"
		if pd.sa != "" {
			vc[podSAKey] = pd.sa
		}
	}
	if pd.tokens != "" {
		vc[tokensKey] = pd.tokens
	}
	target := filepath.Join(parent, "mount")
	return &csi.NodePublishVolumeRequest{
		VolumeId:   "csi-" + hex.EncodeToString(sum[:]),
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{VolumeMountGroup: pd.fsGroup}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		Readonly:      true,
		VolumeContext: vc,
		Secrets:       secrets,
	}, target
}

func (p *plugin) publish(req *csi.NodePublishVolumeRequest) error {
	_, err := p.node.NodePublishVolume(context.Background(), req)
	return err
}

func (p *plugin) mustPublish(req *csi.NodePublishVolumeRequest) {
	p.t.Helper()
	if err := p.publish(req); err != nil {
		p.t.Fatalf("publish %s: %v", req.TargetPath, err)
	}
}

func (p *plugin) unpublish(req *csi.NodePublishVolumeRequest) {
	p.t.Helper()
	_, err := p.node.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: req.TargetPath})
	if err != nil {
		p.t.Fatalf("unpublish %s: %v", req.TargetPath, err)
	}
}

// files reads every regular file under dir (through the links, hidden
// entries aside), as a container would see the volume.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(rel string)
	walk = func(rel string) {
		ents, err := os.ReadDir(filepath.Join(dir, rel))
		must(t, err)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "..") {
				continue
			}
			p := filepath.Join(rel, e.Name())
			fi, err := os.Stat(filepath.Join(dir, p))
			must(t, err)
			if fi.IsDir() {
				walk(p)
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, p))
			must(t, err)
			out[p] = string(b)
		}
	}
	walk("")
	return out
}

func wantFiles(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got := files(t, dir)
	if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
		t.Fatalf("%s shows %v, want %v", dir, sorted(got), sorted(want))
	}
}

func sorted(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mountCount counts the mounts at path in this mount namespace.
func mountCount(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	must(t, err)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == path {
			n++
		}
	}
	return n
}

func requireFUSE(t *testing.T) {
	t.Helper()
	needroot.FUSE(t, "CSI publishes mount FUSE")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
