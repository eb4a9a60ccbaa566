package csi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// subPathUpdates "true" makes the top-level names of every kind of volume
// (Secret, nodePublishSecretRef, provider) real files with an inode that
// follows the Secret; any other value than true/false is refused, naming
// the attribute.
func TestSubPathUpdatesAttribute(t *testing.T) {
	p := startProviderPlugin(t)
	p.writeSecret("team-a", "db", map[string]string{"username": "u1"})
	sp := map[string]string{"subPathUpdates": "true"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"subPathUpdates": "true"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	reqSecret, secretVol := p.inline(pod{ns: "team-a", name: "a"}, "s", with("secretName", "db"), nil)
	reqStatic, staticVol := p.inline(pod{ns: "team-a", name: "b"}, "s", sp, map[string]string{"username": "u1"})
	reqProv, provVol := p.inline(pod{ns: "team-a", name: "c"}, "s", with("secretProviderClass", "db"), nil)
	reqPlain, plainVol := p.inline(pod{ns: "team-a", name: "d"}, "s", map[string]string{"secretName": "db", "subPathUpdates": "false"}, nil)
	p.mustPublish(reqSecret)
	p.mustPublish(reqStatic)
	p.mustPublish(reqProv)
	p.mustPublish(reqPlain)
	inodes := map[string]uint64{}
	for _, f := range []string{filepath.Join(secretVol, "username"), filepath.Join(staticVol, "username"), filepath.Join(provVol, "db-password")} {
		fi, err := os.Lstat(f)
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("lstat %s: %v, %v; want a regular file", f, fi, err)
		}
		inodes[f] = fi.Sys().(*syscall.Stat_t).Ino
	}
	if fi, err := os.Lstat(filepath.Join(plainVol, "username")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("subPathUpdates false: username is %v, %v; want kubelet's link", fi, err)
	}

	p.writeSecret("team-a", "db", map[string]string{"username": "u2"})
	reqStatic.Secrets = map[string]string{"username": "u2"}
	p.mustPublish(reqStatic)
	p.srv.SetFiles(map[string]string{"db-password": "s4cret"}, "v2")
	p.mustPublish(reqProv) // a republish asks the provider again
	for f, want := range map[string]string{filepath.Join(secretVol, "username"): "u2", filepath.Join(staticVol, "username"): "u2", filepath.Join(provVol, "db-password"): "s4cret"} {
		deadline := time.Now().Add(5 * time.Second)
		for read(t, f) != want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(f, &st); err != nil || read(t, f) != want || st.Ino != inodes[f] {
			t.Errorf("%s: %q, inode %d (was %d), %v; want %q on the same inode", f, read(t, f), st.Ino, inodes[f], err, want)
		}
	}
	p.unpublish(reqSecret)
	p.unpublish(reqStatic)
	p.unpublish(reqProv)
	p.unpublish(reqPlain)

	for _, v := range []string{"yes", "True", ""} {
		req, _ := p.inline(pod{ns: "team-a", name: "e"}, "s", map[string]string{"secretName": "db", "subPathUpdates": v}, nil)
		err := p.publish(req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "subPathUpdates") {
			t.Errorf("subPathUpdates %q: %v, want InvalidArgument naming the attribute", v, err)
		}
	}
	if _, err := os.Stat(secretVol); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target after unpublish: %v", err)
	}
}
