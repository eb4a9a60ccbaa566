package cluster

import (
	"github.com/secretfs/secretfs/sanity/child"

	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Versions built by build.sh.
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.7.3"
)

// Options tune StartControlPlane; the zero value is fine for tests.
type Options struct {
	// BinDir holds etcd and kube-apiserver; default BinDir().
	BinDir string
	// Detach lets the processes outlive the caller (start.sh). Otherwise
	// they are killed when the calling process dies (Pdeathsig), so a
	// crashed or timed-out test leaves nothing behind.
	Detach bool
	// Log receives progress; default slog.Default().
	Log *slog.Logger
}

// Cluster is a running etcd + kube-apiserver.
type Cluster struct {
	Dir        string // everything lives here: data, certs, logs, kubeconfig
	Kubeconfig string // admin kubeconfig file
	Host       string // https://127.0.0.1:<port>
	AdminToken string // bearer token of user "admin" in group system:masters
	AuditLog   string // JSON lines, see AuditEvents

	opts    Options
	caPEM   []byte
	apiArgs []string
	etcd    *proc
	apiSrv  *proc
	ownsDir bool
	etcdURL string
	apiPort int
}

// StartControlPlane starts etcd and kube-apiserver with their state in dir
// (created if missing; a fresh temp dir, removed by Stop, if dir is "") and
// waits until /readyz answers ok. Binaries must exist: see EnsureBinaries.
func StartControlPlane(ctx context.Context, dir string, opts Options) (c *Cluster, err error) {
	if opts.BinDir == "" {
		opts.BinDir = BinDir()
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	c = &Cluster{opts: opts}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "secretfs-cluster-"); err != nil {
			return nil, err
		}
		c.ownsDir = true
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	c.Dir = dir
	for _, d := range []string{"etcd", "certs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return c, err
		}
	}
	if err := c.writeConfig(); err != nil {
		return c, err
	}

	t0 := time.Now()
	ports, err := child.FreePorts(3)
	if err != nil {
		return c, err
	}
	c.etcdURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c.etcd, err = c.spawn("etcd",
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+c.etcdURL, "--advertise-client-urls="+c.etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync", // test data: durability is not worth the fsync latency
		"--log-level=warn")
	if err != nil {
		return c, err
	}
	if err := c.waitHTTP(ctx, c.etcd, c.etcdURL+"/health", false); err != nil {
		return c, err
	}
	c.opts.Log.Info("etcd ready", "url", c.etcdURL, "pid", c.etcd.PID(), "took", time.Since(t0).Round(time.Millisecond))

	c.apiPort = ports[2]
	c.Host = "https://127.0.0.1:" + strconv.Itoa(c.apiPort)
	c.apiArgs = c.apiserverArgs()
	if err := os.WriteFile(c.Kubeconfig, kubeconfig(c.Host, c.caPEM, c.AdminToken), 0o600); err != nil {
		return c, err
	}
	if err := c.StartAPIServer(ctx); err != nil {
		return c, err
	}
	c.opts.Log.Info("control plane ready", "kubeconfig", c.Kubeconfig, "took", time.Since(t0).Round(time.Millisecond))
	return c, nil
}

// writeConfig writes certificates, keys, token file and audit policy.
func (c *Cluster) writeConfig() error {
	d := c.Dir
	tok := make([]byte, 16)
	rand.Read(tok)
	c.AdminToken = hex.EncodeToString(tok)
	c.Kubeconfig = filepath.Join(d, "kubeconfig")
	c.AuditLog = filepath.Join(d, "audit.log")
	var err error
	if _, _, c.caPEM, err = writeServingCert(filepath.Join(d, "certs")); err != nil {
		return err
	}
	if err := writeServiceAccountKey(filepath.Join(d, "certs", "sa.key")); err != nil {
		return err
	}
	// token,user,uid,"groups": system:masters bypasses RBAC.
	tokens := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", c.AdminToken)
	if err := os.WriteFile(filepath.Join(d, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "audit-policy.yaml"), []byte(auditPolicy), 0o600)
}

func (c *Cluster) apiserverArgs() []string {
	d, certs := c.Dir, filepath.Join(c.Dir, "certs")
	return []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(c.apiPort),
		"--advertise-address=127.0.0.1",
		"--cert-dir=" + certs, // holds our pre-generated apiserver.crt/.key
		"--tls-cert-file=" + filepath.Join(certs, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(certs, "apiserver.key"),
		"--token-auth-file=" + filepath.Join(d, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-key-file=" + filepath.Join(certs, "sa.key"),
		"--service-account-signing-key-file=" + filepath.Join(certs, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.0.0.0/24",
		// No kubelets or controller-manager: don't manage the kubernetes Service endpoints.
		"--endpoint-reconciler-type=none",
		"--audit-policy-file=" + filepath.Join(d, "audit-policy.yaml"),
		"--audit-log-path=" + c.AuditLog,
		"--audit-log-mode=blocking", // written before the request finishes: counts are prompt
	}
}

// StartAPIServer (re)starts kube-apiserver on the same port with the same
// flags and waits for /readyz; etcd and its data are kept.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	if c.apiSrv != nil && c.apiSrv.Alive() {
		return errors.New("kube-apiserver already running")
	}
	t0 := time.Now()
	p, err := c.spawn("kube-apiserver", c.apiArgs...)
	if err != nil {
		return err
	}
	c.apiSrv = p
	if err := c.waitHTTP(ctx, p, c.Host+"/readyz", true); err != nil {
		return err
	}
	c.opts.Log.Info("kube-apiserver ready", "host", c.Host, "pid", p.PID(), "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// StopAPIServer stops kube-apiserver only (SIGTERM, then SIGKILL after 10 s),
// e.g. to test that watchers resume.
func (c *Cluster) StopAPIServer() error {
	if c.apiSrv == nil {
		return nil
	}
	err := c.apiSrv.Stop(10 * time.Second)
	c.opts.Log.Info("kube-apiserver stopped", "err", err)
	return err
}

// KillAPIServer kills kube-apiserver at once (SIGKILL), as a crash would;
// open watches are cut. StartAPIServer brings it back on the same port.
func (c *Cluster) KillAPIServer() {
	if c.apiSrv != nil && c.apiSrv.Alive() {
		c.apiSrv.Kill()
	}
}

// Stop kills both processes by PID and, if StartControlPlane created the
// directory, removes it. Safe to call more than once.
func (c *Cluster) Stop() {
	for _, p := range []*proc{c.apiSrv, c.etcd} {
		if p != nil {
			p.Stop(10 * time.Second)
		}
	}
	if c.ownsDir && c.Dir != "" {
		os.RemoveAll(c.Dir)
		c.Dir = ""
	}
}

// RestConfig is an admin client config (token auth, CA verified).
func (c *Cluster) RestConfig() *rest.Config { return c.RestConfigFor(c.AdminToken) }

// RestConfigFor is a client config authenticating with token, e.g. from TokenFor.
func (c *Cluster) RestConfigFor(token string) *rest.Config {
	return &rest.Config{
		Host:            c.Host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM},
		QPS:             100, Burst: 200, // client-go's 5/10 would throttle test setup
	}
}

// Client is an admin clientset.
func (c *Cluster) Client() kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(c.RestConfig())
}

// ClientFor is a clientset authenticating with token, e.g. from TokenFor.
func (c *Cluster) ClientFor(token string) (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(c.RestConfigFor(token))
}

// WriteKubeconfig writes a kubeconfig for token (e.g. for a driver under test).
func (c *Cluster) WriteKubeconfig(path, token string) error {
	return os.WriteFile(path, kubeconfig(c.Host, c.caPEM, token), 0o600)
}

// PIDs of the running processes, by name.
func (c *Cluster) PIDs() map[string]int {
	m := map[string]int{}
	for _, p := range []*proc{c.etcd, c.apiSrv} {
		if p != nil && p.Alive() {
			m[p.Name] = p.PID()
		}
	}
	return m
}
