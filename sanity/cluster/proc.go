package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/secretfs/secretfs/sanity/child"
)

type proc = child.Proc

func (c *Cluster) spawn(name string, args ...string) (*proc, error) {
	p, err := child.Spawn(c.Dir, name, nil, c.opts.Detach, filepath.Join(c.opts.BinDir, name), args...)
	if err != nil {
		return nil, fmt.Errorf("%w (run build.sh?)", err)
	}
	return p, nil
}

// waitHTTP polls url until it answers 200, failing early if p exits.
func (c *Cluster) waitHTTP(ctx context.Context, p *proc, url string, auth bool) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caPEM)
	hc := &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+c.AdminToken)
		}
		if resp, err := hc.Do(req); err != nil {
			last = err.Error()
		} else {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited before ready (%v); log %s:\n%s", p.Name, p.Cmd.ProcessState, p.Log, p.Tail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s: %s: %w", p.Name, url, last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func kubeconfig(host string, ca []byte, token string) []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: secretfs-sanity
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: user
  user:
    token: %s
contexts:
- name: secretfs-sanity
  context: {cluster: secretfs-sanity, user: user}
current-context: secretfs-sanity
`, host, base64.StdEncoding.EncodeToString(ca), token)
}

// CacheDir is where build.sh puts everything: $SECRETFS_CACHE/k8s-<version>.
func CacheDir() string {
	root := os.Getenv("SECRETFS_CACHE")
	if root == "" {
		root = "/var/cache/secretfs"
	}
	return filepath.Join(root, "k8s-"+KubernetesVersion)
}

// BinDir holds the binaries built by build.sh.
func BinDir() string { return filepath.Join(CacheDir(), "bin") }

// Built reports whether build.sh has finished the named binaries.
func Built(names ...string) bool {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(BinDir(), "."+n+".stamp")); err != nil {
			return false
		}
	}
	return true
}

// EnsureBinaries runs build.sh for the named binaries unless already built.
// The build runs in its own session and log file, so if ctx ends first (a go
// test -timeout, say) it keeps going and the next run finds the binaries.
func EnsureBinaries(ctx context.Context, names ...string) error {
	if Built(names...) {
		return nil
	}
	script, err := buildScript()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(CacheDir(), "build.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("bash", append([]string{script}, names...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s %v failed: %w; see %s", script, names, err, logPath)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("building %v (a cold build takes ~11 min) did not finish in time; "+
			"it continues in the background (pid %d, log %s): rerun later, or run %s first, "+
			"or use go test -timeout 30m: %w", names, cmd.Process.Pid, logPath, script, ctx.Err())
	}
}

// buildScript finds build.sh next to this package's source.
func buildScript() (string, error) {
	if s := os.Getenv("SECRETFS_CLUSTER_BUILD"); s != "" {
		return s, nil
	}
	// Walk up from the working directory (go test runs in the package dir)
	// to the module root.
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		s := filepath.Join(d, "sanity", "cluster", "build.sh")
		if _, err := os.Stat(s); err == nil {
			return s, nil
		}
		if _, err := os.Stat(filepath.Join(d, "build.sh")); err == nil && filepath.Base(d) == "cluster" {
			return filepath.Join(d, "build.sh"), nil
		}
		if d == filepath.Dir(d) {
			return "", errors.New("build.sh not found above " + dir + "; set SECRETFS_CLUSTER_BUILD")
		}
	}
}

// RSS returns the resident memory in bytes of each running process, by name
// (from /proc/<pid>/status), to keep an eye on test machine budgets.
func (c *Cluster) RSS() map[string]int64 {
	m := map[string]int64{}
	for name, pid := range c.PIDs() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m[name] = kb << 10
			}
		}
	}
	return m
}
