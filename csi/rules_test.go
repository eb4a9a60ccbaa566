package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secret"
)

// These tests check the driver's rules (target.go, volumes.go, stale.go,
// node.go) through the fakes of fake_test.go, as any user: what is
// mounted where is pretended, the target folders are real. The same rules
// against real mounts are the root tests (kubelet_test.go,
// hostile_test.go).

// fakeReq is a valid publish of Secret default/s at target, with a PV's
// volume id (an inline id is bound to kubelet's target shape).
func (p *plugin) fakeReq(name, target string) *csi.NodePublishVolumeRequest {
	return p.hostileReq(name, target)
}

// podTarget is a target below kubelet's pods folder whose parent exists.
func (p *plugin) podTarget(name string) string {
	p.t.Helper()
	target := filepath.Join(p.dir, "pods", name, "mount")
	must(p.t, os.MkdirAll(filepath.Dir(target), 0o750))
	return target
}

func wantNoUnmount(t *testing.T, p *plugin) {
	t.Helper()
	if u := p.fm.unmounted(); len(u) != 0 {
		t.Errorf("the driver unmounted %v", u)
	}
}

// A publish hands the volume to the VolumeMaker with the plugin's mount
// options, notes it, and a publish again refreshes the same volume; an
// unpublish unmounts it, forgets it and removes the folder it made.
func TestPublishBookkeeping(t *testing.T) {
	p := startFakePlugin(t)
	req, target := p.inline(pod{ns: "default", name: "app", fsGroup: "1001"}, "v",
		map[string]string{"secretName": "s", "changeDetection": "Get", "ttl": "90s"}, nil)
	p.mustPublish(req)
	v := p.mk.only(t)
	if v.kind != "Mount" || v.dir != target || v.cache != p.d.cfg.Cache {
		t.Errorf("made %v with cache %p, want Mount at %s with the plugin's cache", v, v.cache, target)
	}
	c := v.cfg
	if c.Spec.Namespace != "default" || c.Spec.SecretName != "s" || c.Strategy != cache.StrategyGet || c.TTL != 90*time.Second {
		t.Errorf("config %+v %v %v, want default/s, Get, 90s", c.Spec, c.Strategy, c.TTL)
	}
	if f := c.FS; f.Name != mountSource || !f.AllowOther || f.UID != 0 || f.GID != 0 || f.FSGroup == nil || *f.FSGroup != 1001 {
		t.Errorf("fusefs options %+v, want root's, fsGroup 1001, allow_other, source %s", f, mountSource)
	}
	if !c.Identity.Own() {
		t.Errorf("identity %+v without PodTokens, want the plugin's own", c.Identity)
	}
	if mt := p.d.mounts.get(target); mt == nil || mt.mntID != uint64(v.id) || mt.volumeID != req.VolumeId {
		t.Fatalf("bookkeeping %+v, want volume %s with mount id %d", mt, req.VolumeId, v.id)
	}
	for range 3 {
		p.mustPublish(req)
	}
	if _, _, refreshes, _, _, _ := v.state(); refreshes != 3 || len(p.mk.made()) != 1 || p.fm.count(target) != 1 {
		t.Errorf("3 republishes: %d refreshes, %d volumes, %d mounts; want 3, 1, 1", refreshes, len(p.mk.made()), p.fm.count(target))
	}
	p.unpublish(req)
	if _, _, _, _, unmounts, _ := v.state(); unmounts != 1 {
		t.Errorf("%d unmounts, want 1", unmounts)
	}
	if p.d.Serves(target) || p.fm.count(target) != 0 {
		t.Errorf("after unpublish: served %v, %d mounts", p.d.Serves(target), p.fm.count(target))
	}
	wantAbsent(t, target)
	// Again: nothing there, nothing done, OK (CSI's idempotence).
	p.unpublish(req)
	if _, _, _, _, unmounts, _ := v.state(); unmounts != 1 {
		t.Errorf("a second unpublish unmounted again")
	}
	wantNoUnmount(t, p)
}

// A volume fed by the request's `secrets`: MountStatic with the decoded
// data, the tokens never in it; a republish Sets the new data, and one
// with data that does not make a Secret keeps the last and answers OK.
func TestPublishStatic(t *testing.T) {
	p := startFakePlugin(t)
	req, target := p.inline(pod{ns: "team", name: "app"}, "creds", map[string]string{"base64Keys": "blob"},
		map[string]string{"user": "alice", "blob": "AAEC/w==", tokensKey: `{"":{"token":"t"}}`})
	p.mustPublish(req)
	v := p.mk.only(t)
	if v.kind != "MountStatic" || v.dir != target {
		t.Fatalf("made %v, want MountStatic at %s", v, target)
	}
	s := v.secrets[0]
	if s.Namespace != "team" || len(s.Data) != 2 || string(s.Data["user"]) != "alice" || string(s.Data["blob"]) != "\x00\x01\x02\xff" {
		t.Errorf("secret %s %v, want team's user and decoded blob, no tokens", s.Ref(), s.Data)
	}
	req.Secrets = map[string]string{"user": "bob"}
	p.mustPublish(req)
	req.Secrets = map[string]string{"bad key!": "x"}
	p.mustPublish(req)
	if n, _, _, _, _, _ := v.state(); n != 2 || string(v.secrets[1].Data["user"]) != "bob" {
		t.Errorf("%d secrets shown, want the first and bob's (not the bad one)", n)
	}
	if !strings.Contains(p.logs.String(), "republish kept the last good version") {
		t.Error("the refused republish is not logged")
	}
	if len(p.mk.made()) != 1 {
		t.Errorf("%d volumes made, want 1", len(p.mk.made()))
	}
	// Binary data that is not base64 is the Secret's fault: FailedPrecondition.
	bad, badTarget := p.inline(pod{ns: "team", name: "bad"}, "creds", map[string]string{"base64Keys": "blob"}, map[string]string{"blob": "%%%"})
	wantCode(t, p.publish(bad), codes.FailedPrecondition)
	wantAbsent(t, badTarget)
}

// With PodTokens the volume reads with the pod's tokens; a republish with
// fresh tokens resubscribes, with the same ones refreshes.
func TestPublishPodTokens(t *testing.T) {
	p := startFakePlugin(t, func(c *Config, _ *ServerOptions) { c.PodTokens = true })
	tok := func(v string) string {
		return `{"aud":{"token":"` + v + `","expirationTimestamp":"2030-01-01T00:00:00Z"}}`
	}
	req, _ := p.inline(pod{ns: "default", name: "app", tokens: tok("tok-1")}, "v", map[string]string{"secretName": "s"}, nil)
	p.mustPublish(req)
	v := p.mk.only(t)
	if ts := v.cfg.Identity.Tokens; len(ts) != 1 || ts[0].Value != "tok-1" || v.cfg.Identity.Namespace != "default" {
		t.Fatalf("identity %+v, want the pod's token tok-1 in default", v.cfg.Identity)
	}
	p.mustPublish(req)
	req.VolumeContext[tokensKey] = tok("tok-2")
	p.mustPublish(req)
	_, _, refreshes, resubscribed, _, _ := v.state()
	if refreshes != 1 || len(resubscribed) != 1 || resubscribed[0].Tokens[0].Value != "tok-2" {
		t.Errorf("refreshes %d, resubscribed %+v; want 1 and tok-2", refreshes, resubscribed)
	}
	if mt := p.d.mounts.get(req.TargetPath); mt.id.Tokens[0].Value != "tok-2" {
		t.Errorf("the volume still notes %+v", mt.id)
	}
	// The same tokens again: a refresh, not another resubscription.
	p.mustPublish(req)
	if _, _, refreshes, resubscribed, _, _ := v.state(); refreshes != 2 || len(resubscribed) != 1 {
		t.Errorf("refreshes %d, resubscriptions %d; want 2, 1", refreshes, len(resubscribed))
	}
}

// A target holds one volume: another id, or the same id with other
// attributes, is AlreadyExists and changes nothing.
func TestPublishClash(t *testing.T) {
	p := startFakePlugin(t)
	a, target := p.inline(pod{ns: "default", name: "clash"}, "v", map[string]string{"secretName": "s"}, nil)
	p.mustPublish(a)
	b := proto.Clone(a).(*csi.NodePublishVolumeRequest)
	b.VolumeId = "pv-other"
	wantCode(t, p.publish(b), codes.AlreadyExists)
	c := proto.Clone(a).(*csi.NodePublishVolumeRequest)
	c.VolumeContext["defaultMode"] = "0400"
	wantCode(t, p.publish(c), codes.AlreadyExists)
	d := proto.Clone(a).(*csi.NodePublishVolumeRequest)
	d.VolumeContext["subPathUpdates"] = "true" // another layout
	wantCode(t, p.publish(d), codes.AlreadyExists)
	if len(p.mk.made()) != 1 || p.fm.count(target) != 1 || p.d.mounts.get(target).volumeID != a.VolumeId {
		t.Errorf("a refused publish changed the target: %d volumes, %d mounts", len(p.mk.made()), p.fm.count(target))
	}
	if _, _, refreshes, _, _, _ := p.mk.only(t).state(); refreshes != 0 {
		t.Errorf("a refused publish refreshed the volume")
	}
}

// A volume whose mount went behind the plugin's back (unmounted by hand,
// its server gone) is forgotten, and the next publish mounts it afresh.
func TestRepublishAfterMountGone(t *testing.T) {
	p := startFakePlugin(t)
	req, target := p.inline(pod{ns: "default", name: "gone"}, "v", map[string]string{"secretName": "s"}, nil)
	p.mustPublish(req)
	first := p.mk.only(t)
	first.gone()
	if p.d.Serves(target) {
		t.Error("still served after the mount went")
	}
	p.mustPublish(req)
	vs := p.mk.made()
	if len(vs) != 2 || p.d.mounts.get(target) == nil || p.d.mounts.get(target).mntID != uint64(vs[1].id) {
		t.Fatalf("%d volumes made; want a second one, noted", len(vs))
	}
	// The first volume's late callback must not drop the second.
	first.cfg.OnUnmount()
	if !p.d.Serves(target) {
		t.Error("the old volume's callback dropped the new one")
	}
}

// A failed mount maps to its code, and leaves the target as it was:
// the folder the publish made goes, one that was there stays.
func TestMountErrorCodes(t *testing.T) {
	p := startFakePlugin(t)
	cases := []struct {
		err  error
		code codes.Code
	}{
		{&projection.NotFoundError{Ref: "default/s"}, codes.NotFound},
		{&projection.NotFoundError{Ref: "default/s", Key: "k"}, codes.NotFound},
		{&secret.InvalidError{Object: "default/s", Reason: "bad"}, codes.FailedPrecondition},
		{fmt.Errorf("read: %w", backend.ErrForbidden), codes.PermissionDenied},
		{fmt.Errorf("default/s: %w", mounted.ErrUnavailable), codes.Unavailable},
		{errors.New("mount: no such device"), codes.Internal},
		{status.Error(codes.ResourceExhausted, "as it came"), codes.ResourceExhausted},
	}
	for i, c := range cases {
		for _, existing := range []bool{false, true} {
			target := p.podTarget(fmt.Sprintf("e%d-%v", i, existing))
			if existing {
				must(t, os.Mkdir(target, 0o750))
			}
			p.mk.fail = c.err
			err := p.publish(p.fakeReq(fmt.Sprintf("e%d", i), target))
			wantCode(t, err, c.code)
			if got := status.Convert(err).Message(); c.code != codes.ResourceExhausted && got != c.err.Error() {
				t.Errorf("message %q, want the error's %q", got, c.err.Error())
			}
			if fi, err := os.Lstat(target); existing != (err == nil) || existing && !fi.IsDir() {
				t.Errorf("%v (folder there before: %v): target now %v", c.err, existing, err)
			}
			if p.d.Serves(target) {
				t.Errorf("%v: a failed publish is noted", c.err)
			}
		}
	}
	if n := len(p.mk.made()); n != 0 {
		t.Errorf("%d volumes made", n)
	}
}

// Without a source a Secret volume is FailedPrecondition, and without a
// provider pool a secretProviderClass volume is; nothing is made.
func TestPublishWithoutSource(t *testing.T) {
	p := startFakePlugin(t, func(c *Config, _ *ServerOptions) { c.Cache = nil })
	req, target := p.inline(pod{ns: "default", name: "nosrc"}, "v", map[string]string{"secretName": "s"}, nil)
	err := p.publish(req)
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(status.Convert(err).Message(), "--source") {
		t.Errorf("message %q, want --source named", status.Convert(err).Message())
	}
	wantAbsent(t, target)
	prov, ptarget := p.inline(pod{ns: "default", name: "noprov"}, "v", map[string]string{"secretProviderClass": "db"}, nil)
	wantCode(t, p.publish(prov), codes.FailedPrecondition)
	wantAbsent(t, ptarget)
	// A static volume needs no source.
	static, _ := p.inline(pod{ns: "default", name: "static"}, "v", nil, map[string]string{"k": "v"})
	p.mustPublish(static)
	if n := len(p.mk.made()); n != 1 {
		t.Errorf("%d volumes made, want the static one", n)
	}
}

// What is at the target decides: a file, a folder with files, a missing
// parent, a foreign mount, a live mount of an earlier process, another's
// dead secretfs mount or a subPath bind of a volume are refused
// untouched.
func TestPublishTargetRefusals(t *testing.T) {
	p := startFakePlugin(t)
	cases := []struct {
		name string
		make func(target string)
		code codes.Code
	}{
		{"file", func(tg string) { must(t, os.WriteFile(tg, []byte("keep me"), 0o600)) }, codes.FailedPrecondition},
		{"folder with a file", func(tg string) {
			must(t, os.Mkdir(tg, 0o750))
			must(t, os.WriteFile(filepath.Join(tg, "precious"), []byte("keep me"), 0o600))
		}, codes.FailedPrecondition},
		{"missing parent", func(tg string) { must(t, os.Remove(filepath.Dir(tg))) }, codes.FailedPrecondition},
		{"foreign tmpfs", func(tg string) { must(t, os.Mkdir(tg, 0o750)); p.fm.add(tg, "tmpfs", "tmpfs", "/", false) }, codes.AlreadyExists},
		{"foreign dead FUSE", func(tg string) { must(t, os.Mkdir(tg, 0o750)); p.fm.add(tg, "fuse.sshfs", "host:", "/", true) }, codes.AlreadyExists},
		{"our live mount of an earlier process", func(tg string) { p.fm.ours(tg, false) }, codes.AlreadyExists},
		{"a workstation's dead secretfs", func(tg string) { must(t, os.Mkdir(tg, 0o750)); p.fm.add(tg, fsType, "secretfs", "/", true) }, codes.AlreadyExists},
		{"a dead subPath bind of a volume", func(tg string) { must(t, os.Mkdir(tg, 0o750)); p.fm.add(tg, fsType, mountSource, "/..data/k", true) }, codes.AlreadyExists},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := p.podTarget(fmt.Sprintf("r%d", i))
			c.make(target)
			before, mounts := snap(t, target), p.fm.count(target)
			err := p.publish(p.fakeReq(fmt.Sprintf("r%d", i), target))
			wantRefused(t, err, c.code, target, before)
			if p.fm.count(target) != mounts {
				t.Errorf("mounts at the target: %d, were %d", p.fm.count(target), mounts)
			}
		})
	}
	if n := len(p.mk.made()); n != 0 {
		t.Errorf("%d volumes made", n)
	}
	wantNoUnmount(t, p)
}

// A dead mount of ours at the target (an earlier process's, which no
// keeper held) is left in place and the volume is mounted on top of it,
// so that a HostToContainer container's copy of the dead mount gets the
// new one; the unpublish removes both, and a dead mount it cannot remove
// is Internal.
func TestPublishOverOurDeadMount(t *testing.T) {
	p := startFakePlugin(t)
	target := p.podTarget("dead")
	p.fm.ours(target, true)
	req := p.fakeReq("dead", target)
	p.mustPublish(req)
	if u := p.fm.unmounted(); len(u) != 0 {
		t.Errorf("unmounted %v at publish, want the dead mount left under the volume", u)
	}
	v := p.mk.only(t)
	if p.fm.count(target) != 2 || p.d.mounts.get(target).mntID != uint64(v.id) {
		t.Errorf("%d mounts at the target; want the new volume's over the dead one", p.fm.count(target))
	}
	p.unpublish(req)
	if p.fm.count(target) != 0 {
		t.Errorf("%d mounts left after the unpublish, want none", p.fm.count(target))
	}
	wantAbsent(t, target)

	other := p.podTarget("dead-2")
	p.fm.ours(other, true)
	req = p.fakeReq("dead-2", other)
	p.mustPublish(req)
	p.fm.unmountErr = errors.New("EBUSY")
	_, err := p.node.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: req.TargetPath})
	wantCode(t, err, codes.Internal)
}

// An unpublish of a target this process does not serve: nothing there is
// OK, untouched; a dead mount of ours is cleaned; anything else mounted is
// refused untouched; a file or a folder with files stays.
func TestUnpublishNotServed(t *testing.T) {
	p := startFakePlugin(t)
	cases := []struct {
		name    string
		make    func(target string)
		code    codes.Code
		cleaned bool
	}{
		{"nothing", func(string) {}, codes.OK, false},
		{"empty folder", func(tg string) { must(t, os.Mkdir(tg, 0o750)) }, codes.OK, false},
		{"file", func(tg string) { must(t, os.WriteFile(tg, []byte("keep me"), 0o600)) }, codes.OK, false},
		{"folder with a file", func(tg string) {
			must(t, os.Mkdir(tg, 0o750))
			must(t, os.WriteFile(filepath.Join(tg, "precious"), []byte("keep me"), 0o600))
		}, codes.OK, false},
		{"foreign tmpfs", func(tg string) { must(t, os.Mkdir(tg, 0o750)); p.fm.add(tg, "tmpfs", "tmpfs", "/", false) }, codes.FailedPrecondition, false},
		{"our live mount of an earlier process", func(tg string) { p.fm.ours(tg, false) }, codes.FailedPrecondition, false},
		{"a workstation's dead secretfs", func(tg string) { must(t, os.Mkdir(tg, 0o750)); p.fm.add(tg, fsType, "secretfs", "/", true) }, codes.FailedPrecondition, false},
		{"a dead subPath bind of a volume", func(tg string) { must(t, os.Mkdir(tg, 0o750)); p.fm.add(tg, fsType, mountSource, "/k", true) }, codes.FailedPrecondition, false},
		{"our dead mount of an earlier process", func(tg string) { p.fm.ours(tg, true) }, codes.OK, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := p.podTarget(fmt.Sprintf("u%d", i))
			c.make(target)
			before, mounts := snap(t, target), p.fm.count(target)
			err := p.unpublishAt("pv-u", target)
			wantCode(t, err, c.code)
			if c.cleaned {
				if p.fm.count(target) != 0 || !slices.Contains(p.fm.unmounted(), target) {
					t.Errorf("our dead mount is still there")
				}
				wantAbsent(t, target)
				return
			}
			before.same(t)
			if p.fm.count(target) != mounts || slices.Contains(p.fm.unmounted(), target) {
				t.Errorf("unmounted at %s", target)
			}
		})
	}
}

// An unpublish under another volume id leaves the volume; one with a mount
// stacked over the volume since is refused and unmounts nothing, whoever
// stacked it, until that mount goes.
func TestUnpublishServed(t *testing.T) {
	p := startFakePlugin(t)
	target := p.podTarget("served")
	req := p.fakeReq("served", target)
	p.mustPublish(req)
	v := p.mk.only(t)
	must(t, p.unpublishAt("pv-another", target))
	if !p.d.Serves(target) || p.fm.count(target) != 1 {
		t.Fatal("an unpublish under another id took the volume")
	}
	for _, over := range []struct{ fstype, source string }{{"tmpfs", "tmpfs"}, {fsType, mountSource}} {
		id := p.fm.add(target, over.fstype, over.source, "/", false)
		wantRefused(t, p.unpublishAt(req.VolumeId, target), codes.FailedPrecondition, target)
		if _, _, _, _, unmounts, _ := v.state(); unmounts != 0 || !p.d.Serves(target) {
			t.Fatalf("a %s stacked over the volume: unpublished anyway", over.fstype)
		}
		p.fm.remove(target, id)
	}
	// An unmount that fails is Internal; the volume stays noted, for
	// kubelet's retry.
	p.fm.unmountErr = errors.New("EIO")
	wantCode(t, p.unpublishAt(req.VolumeId, target), codes.Internal)
	if !p.d.Serves(target) {
		t.Error("a failed unpublish forgot the volume")
	}
	p.fm.unmountErr = nil
	must(t, p.unpublishAt(req.VolumeId, target))
	if p.d.Serves(target) || p.fm.count(target) != 0 {
		t.Error("the volume is still there")
	}
	wantAbsent(t, target)
	wantNoUnmount(t, p)
}

// Without a noted mount id (a volume taken back from the keeper whose
// mount was not ours on top then), only a mount of ours on top passes.
func TestUnpublishWithoutMountID(t *testing.T) {
	p := startFakePlugin(t)
	target := p.podTarget("resumed")
	p.mustPublish(p.fakeReq("resumed", target))
	mt := p.d.mounts.get(target)
	mt.mntID = 0
	p.fm.add(target, "tmpfs", "tmpfs", "/", false)
	wantCode(t, p.unpublishAt(mt.volumeID, target), codes.FailedPrecondition)
	if !p.d.Serves(target) {
		t.Error("unpublished under a tmpfs")
	}
}

// mounts.put notes the id of the mount on top for a volume that comes
// without one (taken back from the keeper), if that mount is ours.
func TestPutNotesOwnMountID(t *testing.T) {
	p := startFakePlugin(t)
	ours := p.podTarget("ours")
	id := p.fm.ours(ours, false)
	m := newMounts(p.d.ownMountID) // not the driver's: these have no volume
	mt := &mount{volumeID: "pv-ours"}
	m.put(ours, mt)
	if mt.mntID != uint64(id) {
		t.Errorf("mount id %d, want %d", mt.mntID, id)
	}
	for name, over := range map[string][2]string{"tmpfs": {"tmpfs", "tmpfs"}, "workstation": {fsType, "secretfs"}} {
		target := p.podTarget(name)
		p.fm.ours(target, false)
		p.fm.add(target, over[0], over[1], "/", false)
		mt := &mount{volumeID: "pv-" + name}
		m.put(target, mt)
		if mt.mntID != 0 {
			t.Errorf("%s on top: noted %d, want none", name, mt.mntID)
		}
	}
	nothing := p.podTarget("nothing")
	must(t, os.Mkdir(nothing, 0o750))
	mt = &mount{volumeID: "pv-nothing"}
	m.put(nothing, mt)
	if mt.mntID != 0 {
		t.Errorf("nothing mounted: noted %d (the parent's mount), want none", mt.mntID)
	}
}

// Paths a careless or hostile caller sends are refused before anything
// is looked at, created or unmounted. (The root test TestHostileTargets
// adds `/`, /proc and nesting in a live mount, in a mount namespace.)
func TestHostileTargetsRefused(t *testing.T) {
	p := startFakePlugin(t)
	pods := filepath.Join(p.dir, "pods")
	must(t, os.MkdirAll(pods, 0o750))
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "file"), []byte("outside"), 0o600))
	live := p.podTarget("live")
	liveReq := p.fakeReq("live", live)
	p.mustPublish(liveReq)
	must(t, os.Symlink(outside, filepath.Join(pods, "link")))
	must(t, os.Symlink(live, filepath.Join(pods, "tolive")))
	must(t, os.MkdirAll(filepath.Join(pods, "p"), 0o750))
	must(t, os.Symlink(filepath.Join(outside, "none"), filepath.Join(pods, "p", "dangling")))
	for name, target := range map[string]string{
		"relative":         "pods/x/mount",
		"dot-dot":          pods + "/../pods/x/mount",
		"escaping":         pods + "/../../" + filepath.Base(outside),
		"dot":              pods + "/./x",
		"doubled slash":    pods + "//x",
		"trailing slash":   pods + "/x/",
		"outside the root": outside,
		"the root itself":  p.dir,
		"NUL byte":         pods + "/x\x00y",
		"symlinked target": filepath.Join(pods, "link"),
		"symlinked parent": filepath.Join(pods, "link", "mount"),
		"to a live volume": filepath.Join(pods, "tolive"),
		"dangling link":    filepath.Join(pods, "p", "dangling"),
	} {
		t.Run(name, func(t *testing.T) {
			req := p.fakeReq("x", target)
			keep := []snapshot{snap(t, outside), snap(t, live), snap(t, pods)}
			wantRefused(t, p.publish(req), codes.InvalidArgument, "", keep...)
			wantRefused(t, p.unpublishAt(liveReq.VolumeId, target), codes.InvalidArgument, "", keep...)
			_, err := p.node.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: liveReq.VolumeId, VolumePath: target})
			wantCode(t, err, codes.NotFound)
		})
	}
	if n := len(p.mk.made()); n != 1 || !p.d.Serves(live) || p.fm.count(live) != 1 {
		t.Errorf("%d volumes made; the live one served %v", n, p.d.Serves(live))
	}
	wantNoUnmount(t, p)
}

// CleanupStale removes only dead mounts of ours, on top, at a path the
// guard accepts, that this process does not serve.
func TestCleanupStaleRules(t *testing.T) {
	p := startFakePlugin(t)
	pods := filepath.Join(p.dir, "pods")
	dead1, dead2 := p.podTarget("dead1"), filepath.Join(p.podTarget("dead2"), "deeper")
	p.fm.ours(dead1, true)
	p.fm.ours(dead2, true)
	kept := map[string]func(dir string){
		"live":        func(d string) { p.fm.ours(d, false) },
		"workstation": func(d string) { must(t, os.Mkdir(d, 0o750)); p.fm.add(d, fsType, "secretfs", "/", true) },
		"subpath":     func(d string) { must(t, os.Mkdir(d, 0o750)); p.fm.add(d, fsType, mountSource, "/k", true) },
		"under tmpfs": func(d string) { p.fm.ours(d, true); p.fm.add(d, "tmpfs", "tmpfs", "/", false) },
	}
	var keep []string
	for name, make := range kept {
		d := p.podTarget(name)
		make(d)
		keep = append(keep, d)
	}
	// Below a link: the guard refuses the path, so it stays.
	real := filepath.Join(p.dir, "elsewhere")
	must(t, os.MkdirAll(filepath.Join(real, "mount"), 0o750))
	must(t, os.Symlink(real, filepath.Join(pods, "linked")))
	linked := filepath.Join(pods, "linked", "mount")
	p.fm.add(linked, fsType, mountSource, "/", true)
	keep = append(keep, linked)
	// Outside the mount root: never listed.
	outside := filepath.Join(t.TempDir(), "mount")
	p.fm.ours(outside, true)
	keep = append(keep, outside)
	// Served by this process: never looked at, even if it looks dead.
	served := p.podTarget("served")
	p.mustPublish(p.fakeReq("served", served))
	p.fm.mu.Lock()
	p.fm.top(served).dead = true
	p.fm.mu.Unlock()
	keep = append(keep, served)

	n, err := p.d.CleanupStale()
	if err != nil || n != 2 {
		t.Errorf("CleanupStale = %d, %v; want 2", n, err)
	}
	if u := p.fm.unmounted(); len(u) != 2 || u[0] != dead2 || u[1] != dead1 {
		t.Errorf("unmounted %v, want %s then %s (deepest first)", u, dead2, dead1)
	}
	wantAbsent(t, dead1)
	wantAbsent(t, dead2)
	for _, d := range keep {
		if p.fm.count(d) == 0 {
			t.Errorf("%s: its mount was cleaned", d)
		}
	}
	if !strings.Contains(p.logs.String(), "left a secretfs mount the target rules refuse") {
		t.Error("the mount below a link is not logged")
	}
	// A failed unmount is reported, and the rest still cleaned.
	a, b := p.podTarget("a"), p.podTarget("b")
	p.fm.ours(a, true)
	p.fm.ours(b, true)
	p.fm.unmountErr = errors.New("EBUSY")
	if n, err := p.d.CleanupStale(); n != 0 || err == nil {
		t.Errorf("CleanupStale with failing unmounts = %d, %v; want 0 and an error", n, err)
	}
}

// NodeGetVolumeStats reports the published volume's filesystem, and
// NotFound for any other volume or path.
func TestVolumeStatsRules(t *testing.T) {
	p := startFakePlugin(t)
	target := p.podTarget("stats")
	req := p.fakeReq("stats", target)
	p.mustPublish(req)
	st, err := p.node.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: req.VolumeId, VolumePath: target})
	must(t, err)
	if u := st.GetUsage(); len(u) != 2 || u[0].Total != fakeBlocks*4096 || u[0].Used != u[0].Total || u[1].Total != 2 {
		t.Errorf("usage %v, want %d bytes and 2 inodes, all used", u, fakeBlocks*4096)
	}
	for _, r := range []*csi.NodeGetVolumeStatsRequest{
		{VolumeId: "pv-other", VolumePath: target},
		{VolumeId: req.VolumeId, VolumePath: filepath.Join(p.dir, "pods")},
		{VolumeId: req.VolumeId, VolumePath: target + "/..data"},
	} {
		_, err := p.node.NodeGetVolumeStats(context.Background(), r)
		wantCode(t, err, codes.NotFound)
	}
	for _, r := range []*csi.NodeGetVolumeStatsRequest{{VolumePath: target}, {VolumeId: req.VolumeId}} {
		_, err := p.node.NodeGetVolumeStats(context.Background(), r)
		wantCode(t, err, codes.InvalidArgument)
	}
}

// Calls for one target are ordered: kubelet's retries racing each other
// mount once. A call that waits past its deadline gives up with the
// context's code and changes nothing.
func TestPublishOneTargetAtATime(t *testing.T) {
	p := startFakePlugin(t)
	target := p.podTarget("race")
	req := p.fakeReq("race", target)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- p.publish(req) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	v := p.mk.only(t)
	if _, _, refreshes, _, _, _ := v.state(); refreshes != 7 {
		t.Errorf("%d refreshes, want 7 (one mount, seven republishes)", refreshes)
	}

	unlock, err := p.d.mounts.lock(context.Background(), target)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = p.d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: target})
	wantCode(t, err, codes.DeadlineExceeded)
	unlock()
	if !p.d.Serves(target) {
		t.Error("an unpublish that gave up took the volume")
	}
	p.unpublish(req)
}

// HandOver lets every volume go without unmounting (a keeper holds them);
// UnmountAll unmounts those still on top of their target.
func TestHandOverAndUnmountAll(t *testing.T) {
	p := startFakePlugin(t)
	a, b := p.podTarget("a"), p.podTarget("b")
	p.mustPublish(p.fakeReq("a", a))
	p.mustPublish(p.fakeReq("b", b))
	p.d.HandOver(context.Background())
	if p.mk.quiesced != 1 {
		t.Errorf("HandOver quiesced %d times, want once", p.mk.quiesced)
	}
	for _, v := range p.mk.made() {
		if _, _, _, _, unmounts, abandoned := v.state(); !abandoned || unmounts != 0 {
			t.Errorf("%v: abandoned %v, %d unmounts", v, abandoned, unmounts)
		}
	}
	p.fm.add(b, "tmpfs", "tmpfs", "/", false)
	p.d.UnmountAll()
	if p.d.Serves(a) || p.fm.count(a) != 0 {
		t.Error("UnmountAll left a")
	}
	wantAbsent(t, a)
	if !p.d.Serves(b) || p.fm.count(b) != 2 {
		t.Error("UnmountAll took a volume from under a tmpfs")
	}
	if !strings.Contains(p.logs.String(), "left a volume under another mount") {
		t.Error("the volume left is not logged")
	}
}

// A secretProviderClass volume mounts the provider's checked files
// (MountPayload); a republish asks the provider again and hands new files
// to the volume; the provider's failures map to codes and leave no
// target; an unpublish unmounts.
func TestProviderRules(t *testing.T) {
	p := startProviderPluginOn(t, startFakePlugin)
	p.srv.SetReply(&v1alpha1.MountResponse{ // mode 0: defaultMode applies
		Files:         []*v1alpha1.File{{Path: "db-password", Contents: []byte("s3cret")}},
		ObjectVersion: []*v1alpha1.ObjectVersion{{Id: "db-password", Version: "v1"}},
	})
	req, target := p.inline(pod{ns: "team-a", name: "web", fsGroup: "1001"}, "secrets",
		map[string]string{"secretProviderClass": "db", "defaultMode": "0400", "ttl": "1h"}, nil)
	p.mustPublish(req)
	v := p.mk.only(t)
	if v.kind != "MountPayload" || v.dir != target {
		t.Fatalf("made %v, want MountPayload at %s", v, target)
	}
	f, ok := v.payloads[0].Files["db-password"]
	if len(v.payloads[0].Files) != 1 || !ok || string(f.Data) != "s3cret" || f.Mode != 0o440 {
		t.Errorf("payload %+v, want db-password s3cret 0440 (0400 and fsGroup)", v.payloads[0].Files)
	}
	if fg := v.cfg.FS.FSGroup; fg == nil || *fg != 1001 {
		t.Errorf("fsGroup %v, want 1001", fg)
	}
	p.srv.SetFiles(map[string]string{"db-password": "rotated"}, "v2")
	p.mustPublish(req)
	if n := p.srv.Calls(); n != 2 {
		t.Errorf("%d provider calls after a republish, want 2", n)
	}
	v.mu.Lock()
	shown := v.payloads[len(v.payloads)-1].Files["db-password"].Data
	v.mu.Unlock()
	if string(shown) != "rotated" || len(p.mk.made()) != 1 {
		t.Errorf("after the republish the volume shows %q (%d volumes made)", shown, len(p.mk.made()))
	}
	for attrs, code := range map[string]codes.Code{"nope": codes.NotFound, "aws": codes.Unavailable} {
		if attrs == "aws" {
			p.writeClass("team-a", "aws", "aws", `{"objects": "x"}`)
		}
		bad, badTarget := p.inline(pod{ns: "team-a", name: "bad-" + attrs}, "secrets", map[string]string{"secretProviderClass": attrs}, nil)
		wantCode(t, p.publish(bad), code)
		wantAbsent(t, badTarget)
	}
	p.unpublish(req)
	if _, _, _, _, unmounts, _ := v.state(); unmounts != 1 || p.d.Serves(target) {
		t.Errorf("%d unmounts, served %v", unmounts, p.d.Serves(target))
	}
	wantAbsent(t, target)
}
