package csi

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/cache"
)

func TestParseAttributes(t *testing.T) {
	pod := func(kv ...string) map[string]string {
		m := map[string]string{podNamespaceKey: "team", podNameKey: "app", ephemeralKey: "true"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	i32 := func(v int32) *int32 { return &v }
	cases := []struct {
		name   string
		vc     map[string]string
		ours   bool
		group  string
		errHas string // "" = no error
		check  func(*testing.T, *Attributes)
	}{
		{name: "plain", vc: pod("secretName", "db"), check: func(t *testing.T, a *Attributes) {
			if a.Spec.Namespace != "team" || a.Spec.SecretName != "db" || a.Static || a.Persistent || a.Strategy != cache.StrategyWatch {
				t.Errorf("%+v", a)
			}
		}},
		{name: "unknown key", vc: pod("secretName", "db", "defaultmode", "0400"), errHas: `"defaultmode"`},
		{name: "pod info keys pass", vc: pod("secretName", "db", podInfoPrefix+"future.key", "x")},
		{name: "empty secretName", vc: pod("secretName", ""), errHas: "secretName"},
		{name: "no secretName is static", vc: pod(), check: func(t *testing.T, a *Attributes) {
			if !a.Static || a.Spec.SecretName != staticSecretName {
				t.Errorf("%+v", a)
			}
		}},
		{name: "defaultMode octal", vc: pod("secretName", "s", "defaultMode", "400"), check: func(t *testing.T, a *Attributes) {
			if *a.Spec.DefaultMode != 0o400 {
				t.Errorf("%#o", *a.Spec.DefaultMode)
			}
		}},
		{name: "defaultMode 0o", vc: pod("secretName", "s", "defaultMode", "0o440"), check: func(t *testing.T, a *Attributes) {
			if *a.Spec.DefaultMode != 0o440 {
				t.Errorf("%#o", *a.Spec.DefaultMode)
			}
		}},
		{name: "defaultMode bad", vc: pod("secretName", "s", "defaultMode", "0999"), errHas: "defaultMode"},
		{name: "optional true", vc: pod("secretName", "s", "optional", "true"), check: func(t *testing.T, a *Attributes) {
			if !a.Spec.Optional {
				t.Error("not optional")
			}
		}},
		{name: "optional True", vc: pod("secretName", "s", "optional", "True"), errHas: "optional"},
		{name: "optional 1", vc: pod("secretName", "s", "optional", "1"), errHas: "optional"},
		{name: "strategy", vc: pod("secretName", "s", "changeDetection", "Cache", "ttl", "30s"), check: func(t *testing.T, a *Attributes) {
			if a.Strategy != cache.StrategyCache || a.TTL != 30*time.Second {
				t.Errorf("%v %v", a.Strategy, a.TTL)
			}
		}},
		{name: "strategy bad", vc: pod("secretName", "s", "changeDetection", "Poll"), errHas: "changeDetection"},
		{name: "ttl bad", vc: pod("secretName", "s", "ttl", "-1s"), errHas: "ttl"},
		{name: "items JSON decimal", vc: pod("secretName", "s", "items", `[{"key":"a","path":"x/a","mode":256}]`), check: func(t *testing.T, a *Attributes) {
			if len(a.Spec.Items) != 1 || a.Spec.Items[0].Path != "x/a" || *a.Spec.Items[0].Mode != 0o400 {
				t.Errorf("%+v", a.Spec.Items)
			}
		}},
		{name: "items YAML leading 0 is octal", vc: pod("secretName", "s", "items", "- key: a\n  path: a\n  mode: 0400\n"), check: func(t *testing.T, a *Attributes) {
			if *a.Spec.Items[0].Mode != 0o400 {
				t.Errorf("%#o", *a.Spec.Items[0].Mode)
			}
		}},
		{name: "items string mode octal", vc: pod("secretName", "s", "items", `[{"key":"a","path":"a","mode":"440"}]`), check: func(t *testing.T, a *Attributes) {
			if *a.Spec.Items[0].Mode != 0o440 {
				t.Errorf("%#o", *a.Spec.Items[0].Mode)
			}
		}},
		{name: "items no mode", vc: pod("secretName", "s", "items", `[{"key":"a","path":"a"}]`), check: func(t *testing.T, a *Attributes) {
			if a.Spec.Items[0].Mode != nil {
				t.Error("mode set")
			}
		}},
		{name: "items mode too big", vc: pod("secretName", "s", "items", `[{"key":"a","path":"a","mode":1000}]`), errHas: "items"},
		{name: "items mode float", vc: pod("secretName", "s", "items", `[{"key":"a","path":"a","mode":1.5}]`), errHas: "mode"},
		{name: "items unknown field", vc: pod("secretName", "s", "items", `[{"key":"a","paht":"a"}]`), errHas: "paht"},
		{name: "items missing path", vc: pod("secretName", "s", "items", `[{"key":"a"}]`), errHas: "path"},
		{name: "items not a list", vc: pod("secretName", "s", "items", `{"key":"a"}`), errHas: "items"},
		{name: "items bad path", vc: pod("secretName", "s", "items", `[{"key":"a","path":"/etc/a"}]`), errHas: "items[0].path"},
		{name: "items bad key", vc: pod("secretName", "s", "items", `[{"key":"a b","path":"a"}]`), errHas: "items[0].key"},
		{name: "base64Keys with secretName", vc: pod("secretName", "s", "base64Keys", "a"), errHas: "base64Keys"},
		{name: "base64Keys static", vc: pod("base64Keys", "a, b"), check: func(t *testing.T, a *Attributes) {
			if strings.Join(a.Base64Keys, ",") != "a,b" {
				t.Errorf("%v", a.Base64Keys)
			}
		}},
		{name: "mount group", vc: pod("secretName", "s"), group: "1001", check: func(t *testing.T, a *Attributes) {
			if a.Spec.FSGroup == nil || *a.Spec.FSGroup != 1001 {
				t.Errorf("%v", a.Spec.FSGroup)
			}
		}},
		{name: "mount group not a number", vc: pod("secretName", "s"), group: "wheel", errHas: "volume_mount_group"},
		{name: "mount group negative", vc: pod("secretName", "s"), group: "-1", errHas: "volume_mount_group"},
		// The namespace rule: an inline volume reads only its Pod's namespace.
		{name: "inline other namespace", vc: pod("secretName", "s", "secretNamespace", "other"), errHas: "secretNamespace"},
		{name: "inline same namespace", vc: pod("secretName", "s", "secretNamespace", "team")},
		{name: "no pod namespace", vc: map[string]string{"secretName": "s", "secretNamespace": "x"}, errHas: podNamespaceKey},
		{name: "no pod namespace, nothing", vc: map[string]string{"secretName": "s"}, errHas: podNamespaceKey},
		{name: "ephemeral false honours secretNamespace", vc: pod("secretName", "s", ephemeralKey, "false", "secretNamespace", "other"), check: func(t *testing.T, a *Attributes) {
			if a.Spec.Namespace != "other" || !a.Persistent {
				t.Errorf("%+v", a)
			}
		}},
		{name: "persistent without secretNamespace uses pod's", vc: pod("secretName", "s", ephemeralKey, "false"), check: func(t *testing.T, a *Attributes) {
			if a.Spec.Namespace != "team" {
				t.Errorf("%q", a.Spec.Namespace)
			}
		}},
		{name: "our id is persistent", vc: map[string]string{"secretName": "s", "secretNamespace": "other"}, ours: true, check: func(t *testing.T, a *Attributes) {
			if a.Spec.Namespace != "other" || !a.Persistent {
				t.Errorf("%+v", a)
			}
		}},
		{name: "our id without any namespace", vc: map[string]string{"secretName": "s"}, ours: true, errHas: "secretNamespace"},
		{name: "our id but ephemeral true", vc: pod("secretName", "s", "secretNamespace", "other"), ours: true, errHas: "secretNamespace"},
		{name: "ephemeral garbage", vc: pod("secretName", "s", ephemeralKey, "maybe"), errHas: "ephemeral"},
		{name: "items mode", vc: pod("secretName", "s", "items", `[{"key":"a","path":"a","mode":"0400"}]`), check: func(t *testing.T, a *Attributes) {
			if *a.Spec.Items[0].Mode != *i32(0o400) {
				t.Error("mode")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := ParseAttributes(c.vc, c.ours, c.group)
			switch {
			case c.errHas == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.errHas != "" && err == nil:
				t.Fatalf("no error, want one naming %s", c.errHas)
			case c.errHas != "" && !strings.Contains(err.Error(), c.errHas):
				t.Fatalf("error %q does not name %s", err, c.errHas)
			}
			if err == nil && c.check != nil {
				c.check(t, a)
			}
		})
	}
}

func TestPodIdentity(t *testing.T) {
	jwt := func(sub, sig string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"`+sub+`"}`)) + "." + sig
	}
	api, other := jwt("system:serviceaccount:app:web", "a"), jwt("system:serviceaccount:app:web", "o")
	id, err := podIdentity(`{"other":{"token":"`+other+`"},"":{"token":"`+api+`","expirationTimestamp":"2030-01-01T00:00:00Z"}}`, "app", "web")
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	want := backend.Identity{Namespace: "app", ServiceAccount: "web", Tokens: []backend.Token{{Value: api, Expiry: exp}, {Value: other}}}
	if err != nil || !reflect.DeepEqual(id, want) {
		t.Errorf("%+v %v", id, err)
	}
	// A token claiming another account, or none: the volume shares with
	// no other.
	for _, tok := range []string{jwt("system:serviceaccount:app:admin", "x"), jwt("system:serviceaccount:other:web", "x"), "opaque"} {
		id, err := podIdentity(`{"":{"token":"`+tok+`"}}`, "app", "web")
		if err != nil || id.ServiceAccount != "" || len(id.Tokens) != 1 {
			t.Errorf("token %.20q…: %+v %v; want no service account", tok, id, err)
		}
	}
	if _, err := podIdentity(`{"":{"token":"x","expirationTimestamp":"soon"}}`, "app", "web"); err == nil || strings.Contains(err.Error(), `"x"`) {
		t.Errorf("bad expiry: %v", err)
	}
	if _, err := podIdentity(`{"":"sekrit-token"}`, "app", "web"); err == nil || strings.Contains(err.Error(), "sekrit") {
		t.Errorf("bad JSON: %v", err)
	}
	if _, err := podIdentity(`{"":{"token":""}}`, "app", "web"); err == nil {
		t.Error("no token: no error")
	}
}

func TestControllerID(t *testing.T) {
	a := controllerID("pvc-1", map[string]string{"secretName": "s", "defaultMode": "0400"})
	b := controllerID("pvc-1", map[string]string{"defaultMode": "0400", "secretName": "s"})
	c := controllerID("pvc-1", map[string]string{"secretName": "t"})
	if a != b || a == c || !isControllerID(a) || len(a) > 128 {
		t.Errorf("%s %s %s", a, b, c)
	}
	for _, id := range []string{"csi-" + strings.Repeat("a", 64), "sfs-xyz", "sfs-" + strings.Repeat("A", 40), ""} {
		if isControllerID(id) {
			t.Errorf("%q taken for ours", id)
		}
	}
}

// kubelet's inline ids make a volume ephemeral whatever its attributes
// say: "ephemeral: false" written by the Pod's author reaches no other
// namespace.
func TestInlineIDIsEphemeral(t *testing.T) {
	inline := "csi-" + strings.Repeat("0123456789abcdef", 4)
	for _, id := range []string{inline, "csi-" + strings.Repeat("f", 64)} {
		if !isInlineID(id) {
			t.Errorf("%q not taken for an inline id", id)
		}
	}
	for _, id := range []string{"csi-" + strings.Repeat("F", 64), "csi-" + strings.Repeat("a", 63), "csi-x", "pv-1", ""} {
		if isInlineID(id) {
			t.Errorf("%q taken for an inline id", id)
		}
	}
	trick := map[string]string{"secretName": "s", "secretNamespace": "kube-system", ephemeralKey: "false"}
	if _, err := ParseVolumeAttributes(inline, trick, ""); err == nil || !strings.Contains(err.Error(), podNamespaceKey) {
		t.Errorf("inline id, ephemeral false, no pod info: %v; want refused", err)
	}
	trick[podNamespaceKey] = "team"
	if _, err := ParseVolumeAttributes(inline, trick, ""); err == nil || !strings.Contains(err.Error(), attrSecretNamespace) {
		t.Errorf("inline id, ephemeral false, other namespace: %v; want refused", err)
	}
	trick[attrSecretNamespace] = "team"
	a, err := ParseVolumeAttributes(inline, trick, "")
	if err != nil || a.Persistent || a.Spec.Namespace != "team" {
		t.Errorf("inline id, own namespace: %+v %v", a, err)
	}
	// A PV's handle is persistent when kubelet says so; our Controller's
	// id always.
	pv := map[string]string{"secretName": "s", "secretNamespace": "other", ephemeralKey: "false"}
	if a, err := ParseVolumeAttributes("pv-1", pv, ""); err != nil || a.Spec.Namespace != "other" {
		t.Errorf("PV: %+v %v", a, err)
	}
	ours := controllerID("pvc-1", map[string]string{"secretName": "s"})
	if a, err := ParseVolumeAttributes(ours, map[string]string{"secretName": "s", "secretNamespace": "other"}, ""); err != nil || a.Spec.Namespace != "other" {
		t.Errorf("our id: %+v %v", a, err)
	}
}

// A status names the attribute that is wrong, never its value, and a key
// (the caller chooses its length) is cut at maxNameInMessage bytes.
func TestAttributeErrorsNameNotValue(t *testing.T) {
	const mark = "VALUE-MARK-"
	big := strings.Repeat(mark, (200<<10)/len(mark))
	inline := "csi-" + strings.Repeat("ab", 32)
	pod := map[string]string{podNamespaceKey: "default", ephemeralKey: "true"}
	// with is the pod's keys and kv; sec the same for a Secret volume.
	with := func(kv ...string) map[string]string {
		vc := map[string]string{}
		for k, v := range pod {
			vc[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			vc[kv[i]] = kv[i+1]
		}
		return vc
	}
	sec := func(kv ...string) map[string]string { return with(append([]string{attrSecretName, "s"}, kv...)...) }
	cases := []struct {
		name, id, group string
		vc              map[string]string
		attr            string // named in the message
	}{
		{"unknown key", inline, "", sec(big, "x"), `"` + mark},
		{"optional", inline, "", sec(attrOptional, big), attrOptional},
		{"ttl", inline, "", sec(attrTTL, big), attrTTL},
		{"defaultMode", inline, "", sec(attrDefaultMode, big), attrDefaultMode},
		{"changeDetection", inline, "", sec(attrChangeDetection, big), attrChangeDetection},
		{"ephemeral", inline, "", sec(ephemeralKey, big), ephemeralKey},
		{"secretNamespace", inline, "", sec(attrSecretNamespace, big), attrSecretNamespace},
		{"pod namespace in the message", inline, "", sec(attrSecretNamespace, "other", podNamespaceKey, big), attrSecretNamespace},
		{"items field", inline, "", sec(attrItems, `[{"key":"k","path":"p","`+big+`":1}]`), attrItems},
		{"volume_mount_group", "pv-1", big, sec(), "volume_mount_group"},
		{"provider unknown key", inline, "", with(attrSecretProviderClass, "spc", big, "x"), `"` + mark},
		{"provider class", inline, "", with(attrSecretProviderClass, big), attrSecretProviderClass},
		{"provider ttl", inline, "", with(attrSecretProviderClass, "spc", attrTTL, big), attrTTL},
		{"provider changeDetection", inline, "", with(attrSecretProviderClass, "spc", attrChangeDetection, big), attrChangeDetection},
		{"provider defaultMode", inline, "", with(attrSecretProviderClass, "spc", attrDefaultMode, big), attrDefaultMode},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseVolumeAttributes(c.id, c.vc, c.group)
			if err == nil {
				t.Fatalf("accepted")
			}
			msg := invalidArg(err).Error()
			if !strings.Contains(msg, c.attr) {
				t.Errorf("message %q does not name %s", msg, c.attr)
			}
			if strings.Count(msg, mark) > maxNameInMessage/len(mark)+1 || len(msg) > 1024 {
				t.Errorf("message of %d bytes repeats the value: %.300s", len(msg), msg)
			}
		})
	}
}

// TestKubeletPodUID: kubelet's inline target is matched by its tail, so
// a mount root of kubelet's folder or of its pods folder (the DaemonSet's)
// both work.
func TestKubeletTarget(t *testing.T) {
	for target, want := range map[string]string{
		"/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/foo/mount":  "u1 foo",
		"/k/pods/u2/volumes/kubernetes.io~csi/bar/mount":                "u2 bar",
		"/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/foo":        "",
		"/var/lib/kubelet/pods/u1/volumes/kubernetes.io~nfs/foo/mount":  "",
		"/var/lib/kubelet/other/u1/volumes/kubernetes.io~csi/foo/mount": "",
		"/pods/u1/volumes/kubernetes.io~csi/foo/mount/x":                "",
	} {
		uid, vol, ok := kubeletTarget(target)
		if got := strings.TrimSpace(uid + " " + vol); got != want || ok != (want != "") {
			t.Errorf("kubeletTarget(%s) = %q, %v; want %q", target, got, ok, want)
		}
	}
}
