package csi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/secretfs/secretfs/sanity/mountns"
)

// The seed's example Pods (kubernetes.io "Secrets"), rewritten as CSI
// inline volumes, published as kubelet publishes them.
func TestSeedPods(t *testing.T) {
	p := startPlugin(t)
	p.writeSecret("default", "mysecret", map[string]string{"username": "admin", "password": "1f2d1e2e67df"})
	p.writeSecret("default", "dotfile-secret", map[string]string{".secret-file": "value-2\r\n\r\n"})
	p.writeSecret("default", "ssh-key-secret", map[string]string{"ssh-privatekey": "PRIVATE", "ssh-publickey": "PUBLIC"})
	p.writeSecret("default", "prod-db-secret", map[string]string{"username": "produser", "password": "Y4nys7f11"})
	p.writeSecret("default", "test-db-secret", map[string]string{"username": "testuser", "password": "iluvtests"})

	t.Run("mysecret at /etc/foo", func(t *testing.T) {
		req, target := p.inline(pod{ns: "default", name: "mypod"}, "foo", map[string]string{"secretName": "mysecret", "optional": "false"}, nil)
		p.mustPublish(req)
		wantFiles(t, target, map[string]string{"username": "admin", "password": "1f2d1e2e67df"})
		fi, err := os.Stat(target)
		must(t, err)
		// kubelet's volume root: drwxrwxrwt root root.
		if fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 || owner(fi) != [2]uint32{0, 0} {
			t.Errorf("root %v owner %v, want drwxrwxrwt root:root", fi.Mode(), owner(fi))
		}
		if l, err := os.Readlink(filepath.Join(target, "username")); err != nil || l != "..data/username" {
			t.Errorf("username -> %q %v, want ..data/username", l, err)
		}
		st := mode(t, filepath.Join(target, "username"))
		if st != 0o644 {
			t.Errorf("username mode %#o, want 0644", st)
		}
		p.unpublish(req)
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("target after unpublish: %v", err)
		}
	})
	t.Run("items to my-group/my-username", func(t *testing.T) {
		req, target := p.inline(pod{ns: "default", name: "mypod-items"}, "foo",
			map[string]string{"secretName": "mysecret", "items": "- key: username\n  path: my-group/my-username\n"}, nil)
		p.mustPublish(req)
		wantFiles(t, target, map[string]string{"my-group/my-username": "admin"})
		if l, _ := os.Readlink(filepath.Join(target, "my-group")); l != "..data/my-group" {
			t.Errorf("my-group -> %q", l)
		}
	})
	t.Run("defaultMode 0400", func(t *testing.T) {
		req, target := p.inline(pod{ns: "default", name: "mypod-mode"}, "foo", map[string]string{"secretName": "mysecret", "defaultMode": "0400"}, nil)
		p.mustPublish(req)
		for _, k := range []string{"username", "password"} {
			if m := mode(t, filepath.Join(target, k)); m != 0o400 {
				t.Errorf("%s mode %#o, want 0400", k, m)
			}
		}
	})
	t.Run("dotfile", func(t *testing.T) {
		req, target := p.inline(pod{ns: "default", name: "secret-dotfiles-pod"}, "secret-volume", map[string]string{"secretName": "dotfile-secret"}, nil)
		p.mustPublish(req)
		b, err := os.ReadFile(filepath.Join(target, ".secret-file"))
		if err != nil || string(b) != "value-2\r\n\r\n" {
			t.Errorf(".secret-file: %q %v", b, err)
		}
	})
	t.Run("ssh-key", func(t *testing.T) {
		req, target := p.inline(pod{ns: "default", name: "secret-test-pod"}, "secret-volume", map[string]string{"secretName": "ssh-key-secret"}, nil)
		p.mustPublish(req)
		wantFiles(t, target, map[string]string{"ssh-privatekey": "PRIVATE", "ssh-publickey": "PUBLIC"})
	})
	t.Run("prod and test db", func(t *testing.T) {
		prod, pt := p.inline(pod{ns: "default", name: "prod-db-client-pod"}, "secret-volume", map[string]string{"secretName": "prod-db-secret"}, nil)
		test, tt := p.inline(pod{ns: "default", name: "test-db-client-pod"}, "secret-volume", map[string]string{"secretName": "test-db-secret"}, nil)
		p.mustPublish(prod)
		p.mustPublish(test)
		wantFiles(t, pt, map[string]string{"username": "produser", "password": "Y4nys7f11"})
		wantFiles(t, tt, map[string]string{"username": "testuser", "password": "iluvtests"})
	})
}

// The request's `secrets` (nodePublishSecretRef) as the source; a
// republish with new `secrets` (requiresRepublish) updates the files.
func TestRepublishFollowsSecrets(t *testing.T) {
	p := startPlugin(t)
	req, target := p.inline(pod{ns: "team", name: "app"}, "creds", map[string]string{"base64Keys": "blob"},
		map[string]string{"user": "alice", "blob": "AAEC/w=="})
	p.mustPublish(req)
	wantFiles(t, target, map[string]string{"user": "alice", "blob": "\x00\x01\x02\xff"})
	req.Secrets = map[string]string{"user": "bob", "token": "t2"}
	p.mustPublish(req)
	wantFiles(t, target, map[string]string{"user": "bob", "token": "t2"})
	if n := mountCount(t, target); n != 1 {
		t.Errorf("%d mounts at the target after republish, want 1", n)
	}
	// A bad republish keeps the last good version and answers OK.
	req.Secrets = map[string]string{"bad key!": "x"}
	p.mustPublish(req)
	wantFiles(t, target, map[string]string{"user": "bob", "token": "t2"})
}

// A republish with the Get strategy re-reads the source.
func TestRepublishGetStrategy(t *testing.T) {
	p := startPlugin(t)
	p.writeSecret("default", "s", map[string]string{"k": "v1"})
	req, target := p.inline(pod{ns: "default", name: "a"}, "v", map[string]string{"secretName": "s", "changeDetection": "Get"}, nil)
	p.mustPublish(req)
	p.writeSecret("default", "s", map[string]string{"k": "v2"})
	p.mustPublish(req)
	wantFiles(t, target, map[string]string{"k": "v2"})
}

func TestFSGroup(t *testing.T) {
	p := startPlugin(t)
	p.writeSecret("default", "mysecret", map[string]string{"username": "admin"})
	req, target := p.inline(pod{ns: "default", name: "mypod", fsGroup: "1001"}, "foo", map[string]string{"secretName": "mysecret", "defaultMode": "0400"}, nil)
	p.mustPublish(req)
	fi, err := os.Stat(filepath.Join(target, "username"))
	must(t, err)
	if fi.Mode().Perm() != 0o440 || owner(fi) != [2]uint32{0, 1001} {
		t.Errorf("username %v %v, want -r--r----- root:1001", fi.Mode(), owner(fi))
	}
	root, err := os.Stat(target)
	must(t, err)
	if root.Mode()&os.ModeSetgid == 0 || owner(root)[1] != 1001 {
		t.Errorf("root %v %v, want setgid group 1001", root.Mode(), owner(root))
	}
}

// Two volumes of one Secret both follow an edit of the source (Watch).
func TestTwoVolumesOneSecret(t *testing.T) {
	p := startPlugin(t)
	p.writeSecret("default", "shared", map[string]string{"k": "v1"})
	a, ta := p.inline(pod{ns: "default", name: "a"}, "v", map[string]string{"secretName": "shared"}, nil)
	b, tb := p.inline(pod{ns: "default", name: "b"}, "v", map[string]string{"secretName": "shared", "items": `[{"key":"k","path":"x/k"}]`}, nil)
	p.mustPublish(a)
	p.mustPublish(b)
	p.writeSecret("default", "shared", map[string]string{"k": "v2"})
	waitFor(t, "both volumes to follow", func() bool {
		x, _ := os.ReadFile(filepath.Join(ta, "k"))
		y, _ := os.ReadFile(filepath.Join(tb, "x/k"))
		return string(x) == "v2" && string(y) == "v2"
	})
}

// Same name in two namespaces stays apart; a Pod never reads another
// namespace's Secret.
func TestNamespaces(t *testing.T) {
	p := startPlugin(t)
	p.writeSecret("red", "db", map[string]string{"password": "red-pw"})
	p.writeSecret("blue", "db", map[string]string{"password": "blue-pw"})
	r, tr := p.inline(pod{ns: "red", name: "app"}, "db", map[string]string{"secretName": "db"}, nil)
	b, tb := p.inline(pod{ns: "blue", name: "app"}, "db", map[string]string{"secretName": "db"}, nil)
	p.mustPublish(r)
	p.mustPublish(b)
	wantFiles(t, tr, map[string]string{"password": "red-pw"})
	wantFiles(t, tb, map[string]string{"password": "blue-pw"})

	steal, _ := p.inline(pod{ns: "red", name: "thief"}, "db", map[string]string{"secretName": "db", "secretNamespace": "blue"}, nil)
	wantCode(t, p.publish(steal), codes.InvalidArgument)
	// The same namespace spelt out is fine.
	same, ts := p.inline(pod{ns: "red", name: "ok"}, "db", map[string]string{"secretName": "db", "secretNamespace": "red"}, nil)
	p.mustPublish(same)
	wantFiles(t, ts, map[string]string{"password": "red-pw"})
	// Without podInfoOnMount nobody knows the Pod's namespace: refused.
	blind, _ := p.inline(pod{ns: "red", name: "blind", noPodInfo: true}, "db", map[string]string{"secretName": "db", "secretNamespace": "blue"}, nil)
	wantCode(t, p.publish(blind), codes.InvalidArgument)
	// An id that looks like our Controller's does not make an inline
	// volume persistent: kubelet's ephemeral "true" wins.
	forged, _ := p.inline(pod{ns: "red", name: "forged"}, "db", map[string]string{"secretName": "db", "secretNamespace": "blue"}, nil)
	forged.VolumeId = controllerID("x", nil)
	wantCode(t, p.publish(forged), codes.InvalidArgument)
	// kubelet's inline id stays ephemeral whatever the Pod's author
	// writes: "ephemeral: false" reaches no other namespace, with or
	// without pod info.
	trick, ttrick := p.inline(pod{ns: "red", name: "trick"}, "db", map[string]string{"secretName": "db", "secretNamespace": "blue"}, nil)
	trick.VolumeContext[ephemeralKey] = "false"
	wantCode(t, p.publish(trick), codes.InvalidArgument)
	wantAbsent(t, ttrick)
	blindTrick, _ := p.inline(pod{ns: "red", name: "blind-trick", noPodInfo: true}, "db", map[string]string{"secretName": "db", "secretNamespace": "kube-system"}, nil)
	blindTrick.VolumeContext[ephemeralKey] = "false"
	wantCode(t, p.publish(blindTrick), codes.InvalidArgument)
	// Without podInfoOnMount kubelet passes the author's own pod.* keys:
	// a forged namespace is refused, for the pod.uid that would vouch
	// for it is not the one in kubelet's target (assigned after the spec
	// was written), and absent is no better.
	for _, uid := range []string{"", "guessed-uid"} {
		forgedNS, tf := p.inline(pod{ns: "red", name: "forged-ns", noPodInfo: true}, "db", map[string]string{"secretName": "db",
			podNamespaceKey: "blue", podNameKey: "forged-ns", ephemeralKey: "true"}, nil)
		if uid != "" {
			forgedNS.VolumeContext[podUIDKey] = uid
		}
		err := p.publish(forgedNS)
		wantCode(t, err, codes.InvalidArgument)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "does not match the target") || !strings.Contains(msg, "podInfoOnMount") || strings.Contains(msg, "blue") {
			t.Errorf("forged pod namespace: message %q: want the mismatch and podInfoOnMount named, never the value", msg)
		}
		wantAbsent(t, tf)
	}
	// An inline id anywhere but at kubelet's target shape is refused:
	// nothing vouches for its pod info there.
	elsewhere, _ := p.inline(pod{ns: "red", name: "elsewhere"}, "db", map[string]string{"secretName": "db"}, nil)
	elsewhere.TargetPath = filepath.Join(p.dir, "pods", "red-elsewhere-uid", "mount")
	must(t, os.MkdirAll(filepath.Dir(elsewhere.TargetPath), 0o750))
	err := p.publish(elsewhere)
	wantCode(t, err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "kubernetes.io~csi") {
		t.Errorf("inline volume at an odd target: message %q: want kubelet's target shape named", msg)
	}
	wantAbsent(t, elsewhere.TargetPath)
	// A persistent volume (PV written by an admin, its id the PV's
	// volumeHandle) may name the namespace.
	pv, tpv := p.inline(pod{ns: "red", name: "pv-user"}, "pv", map[string]string{"secretName": "db", "secretNamespace": "blue"}, nil)
	pv.VolumeContext[ephemeralKey] = "false"
	pv.VolumeId = "pv-blue-db"
	p.mustPublish(pv)
	wantFiles(t, tpv, map[string]string{"password": "blue-pw"})
}

func TestPublishErrors(t *testing.T) {
	p := startPlugin(t)
	p.writeSecret("default", "s", map[string]string{"k": "v"})
	p.writeFile("bad.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: bad, namespace: default}\ndata: {k: '!!notbase64'}\n")
	ok := map[string]string{"secretName": "s"}
	cases := []struct {
		name  string
		attrs map[string]string
		edit  func(*csi.NodePublishVolumeRequest)
		code  codes.Code
	}{
		{"no volume id", ok, func(r *csi.NodePublishVolumeRequest) { r.VolumeId = "" }, codes.InvalidArgument},
		{"no target", ok, func(r *csi.NodePublishVolumeRequest) { r.TargetPath = "" }, codes.InvalidArgument},
		{"no capability", ok, func(r *csi.NodePublishVolumeRequest) { r.VolumeCapability = nil }, codes.InvalidArgument},
		{"block", ok, func(r *csi.NodePublishVolumeRequest) {
			r.VolumeCapability.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
		}, codes.InvalidArgument},
		{"typo defaultmode", map[string]string{"secretName": "s", "defaultmode": "0400"}, nil, codes.InvalidArgument},
		{"optional yes", map[string]string{"secretName": "s", "optional": "yes"}, nil, codes.InvalidArgument},
		{"mount group not a number", ok, func(r *csi.NodePublishVolumeRequest) {
			r.VolumeCapability.GetMount().VolumeMountGroup = "wheel"
		}, codes.InvalidArgument},
		{"bad item path", map[string]string{"secretName": "s", "items": `[{"key":"k","path":"../x"}]`}, nil, codes.InvalidArgument},
		{"missing secret", map[string]string{"secretName": "nope"}, nil, codes.NotFound},
		{"missing key", map[string]string{"secretName": "s", "items": `[{"key":"nokey","path":"x"}]`}, nil, codes.NotFound},
		{"invalid secret", map[string]string{"secretName": "bad"}, nil, codes.FailedPrecondition},
		{"no secretName, no secrets", map[string]string{}, nil, codes.InvalidArgument},
		{"optional missing secret", map[string]string{"secretName": "nope", "optional": "true"}, nil, codes.OK},
		{"optional missing key", map[string]string{"secretName": "s", "optional": "true", "items": `[{"key":"nokey","path":"x"}]`}, nil, codes.OK},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, target := p.inline(pod{ns: "default", name: "p" + string(rune('a'+i))}, "v", c.attrs, nil)
			if c.edit != nil {
				c.edit(req)
			}
			err := p.publish(req)
			wantCode(t, err, c.code)
			if err != nil && req.TargetPath != "" {
				if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a failed publish left the target: %v", err)
				}
			}
		})
	}
	t.Run("messages name the problem", func(t *testing.T) {
		req, _ := p.inline(pod{ns: "default", name: "msg"}, "v", map[string]string{"secretName": "s", "defaultmode": "0400"}, nil)
		if err := p.publish(req); err == nil || !strings.Contains(err.Error(), `"defaultmode"`) {
			t.Errorf("got %v, want the attribute named", err)
		}
		req, _ = p.inline(pod{ns: "default", name: "msg2"}, "v", map[string]string{"secretName": "nope"}, nil)
		if err := p.publish(req); err == nil || !strings.Contains(err.Error(), "default/nope") {
			t.Errorf("got %v, want default/nope named", err)
		}
	})
	t.Run("another volume at the target", func(t *testing.T) {
		a, _ := p.inline(pod{ns: "default", name: "clash"}, "v", ok, nil)
		p.mustPublish(a)
		b := proto.Clone(a).(*csi.NodePublishVolumeRequest)
		b.VolumeId = "csi-other"
		wantCode(t, p.publish(b), codes.AlreadyExists)
		c := proto.Clone(a).(*csi.NodePublishVolumeRequest)
		c.VolumeContext = map[string]string{"secretName": "s", "defaultMode": "0400", podNamespaceKey: "default", podUIDKey: a.VolumeContext[podUIDKey], ephemeralKey: "true"}
		wantCode(t, p.publish(c), codes.AlreadyExists)
	})
	t.Run("same volume again mounts once", func(t *testing.T) {
		req, target := p.inline(pod{ns: "default", name: "twice"}, "v", ok, nil)
		for range 10 {
			p.mustPublish(req)
		}
		if n := mountCount(t, target); n != 1 {
			t.Errorf("%d mounts, want 1", n)
		}
	})
	t.Run("readonly false still read-only", func(t *testing.T) {
		req, target := p.inline(pod{ns: "default", name: "rw"}, "v", ok, nil)
		req.Readonly = false
		p.mustPublish(req)
		err := os.WriteFile(filepath.Join(target, "new"), []byte("x"), 0o644)
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("write: %v, want EROFS", err)
		}
	})
}

// A source that cannot be read with nothing cached is Unavailable.
func TestPublishUnavailable(t *testing.T) {
	p := startPlugin(t)
	p.writeFile("broken.yaml", "{{{ not yaml")
	req, _ := p.inline(pod{ns: "default", name: "u"}, "v", map[string]string{"secretName": "s"}, nil)
	wantCode(t, p.publish(req), codes.Unavailable)
}

func TestUnpublish(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	p := startPlugin(t)
	p.writeSecret("default", "s", map[string]string{"k": "v"})
	t.Run("unknown target", func(t *testing.T) {
		_, err := p.node.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: "x", TargetPath: filepath.Join(p.dir, "nothing")})
		must(t, err)
	})
	t.Run("busy target detaches lazily", func(t *testing.T) {
		req, target := p.inline(pod{ns: "default", name: "busy"}, "v", map[string]string{"secretName": "s"}, nil)
		p.mustPublish(req)
		f, err := os.Open(filepath.Join(target, "k"))
		must(t, err)
		defer f.Close()
		p.unpublish(req)
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("target still there: %v", err)
		}
		b := make([]byte, 8)
		n, err := f.Read(b)
		if err != nil || string(b[:n]) != "v" {
			t.Errorf("open file after lazy unmount: %q %v", b[:n], err)
		}
	})
}

func TestVolumeStats(t *testing.T) {
	p := startPlugin(t)
	p.writeSecret("default", "s", map[string]string{"k": "value"})
	req, target := p.inline(pod{ns: "default", name: "stats"}, "v", map[string]string{"secretName": "s"}, nil)
	p.mustPublish(req)
	st, err := p.node.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: req.VolumeId, VolumePath: target})
	must(t, err)
	if len(st.GetUsage()) == 0 || st.Usage[0].Total <= 0 {
		t.Errorf("usage %v", st.GetUsage())
	}
	_, err = p.node.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: req.VolumeId, VolumePath: filepath.Join(p.dir, "pods")})
	wantCode(t, err, codes.NotFound)
	// A path the guard refuses holds no volume: NotFound, nothing read.
	for _, path := range []string{p.dir, "some/path", target + "/..data", target + "/../mount"} {
		_, err = p.node.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: req.VolumeId, VolumePath: path})
		wantCode(t, err, codes.NotFound)
	}
}

// A dead FUSE mount at the target (its server gone: ENOTCONN) gets the
// volume mounted on top of it (which reaches a HostToContainer container's
// copy), and the unpublish removes both. CleanupStale at start-up leaves
// such mounts at kubelet's targets for kubelet's republish or unpublish,
// and cleans the others.
func TestDeadMount(t *testing.T) {
	if !mountns.Enter(t) {
		return
	}
	p := startPlugin(t)
	p.writeSecret("default", "s", map[string]string{"k": "v"})
	req, target := p.inline(pod{ns: "default", name: "dead"}, "v", map[string]string{"secretName": "s"}, nil)
	deadMount(t, target)
	p.mustPublish(req)
	wantFiles(t, target, map[string]string{"k": "v"})
	if n := mountCount(t, target); n != 2 {
		t.Errorf("%d mounts, want the volume over the dead one", n)
	}

	other := filepath.Join(p.dir, "pods", "old", "mount")
	deadMount(t, other)
	_, kubelets := p.inline(pod{ns: "default", name: "gone"}, "v", map[string]string{"secretName": "s"}, nil)
	deadMount(t, kubelets)
	n, err := p.d.CleanupStale()
	if err != nil || n != 1 {
		t.Errorf("CleanupStale = %d, %v; want 1", n, err)
	}
	if mountCount(t, other) != 0 {
		t.Error("dead mount still there")
	}
	if mountCount(t, kubelets) != 1 {
		t.Error("CleanupStale removed a dead mount at kubelet's target, which kubelet republishes over")
	}
	if mountCount(t, target) != 2 {
		t.Error("CleanupStale touched a live mount or the dead one under it")
	}
	p.unpublish(req)
	if n := mountCount(t, target); n != 0 {
		t.Errorf("%d mounts left after the unpublish", n)
	}
	// kubelet's unpublish of the one left.
	p.unpublish(&csi.NodePublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: kubelets})
	if n := mountCount(t, kubelets); n != 0 {
		t.Errorf("%d mounts left after kubelet's unpublish of a dead mount", n)
	}
}

// deadMount leaves a mount of this plugin at dir whose server is gone.
func deadMount(t *testing.T, dir string) { t.Helper(); deadMountAs(t, dir, mountSource) }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func owner(fi os.FileInfo) [2]uint32 {
	st := fi.Sys().(*syscall.Stat_t)
	return [2]uint32{st.Uid, st.Gid}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	return fi.Mode().Perm()
}

// wantAbsent says nothing is at path (a refused publish made nothing).
func wantAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want nothing there", path, err)
	}
}
