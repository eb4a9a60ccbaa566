package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/secretfs/secretfs/sanity/node"
)

// Several Secrets in one volume: a secretfs volume with the attribute
// `sources` beside the same Pod on kubelet's `projected:` volume, compared
// file by file (and link by link, mode by mode).

// projectedPod is p with one volume at mp of the Secrets sources: a
// secretfs CSI inline volume (kindCSI) or kubelet's projected volume.
func projectedPod(p podSpec, k kind, mp string, defaultMode *int32, sources []corev1.VolumeProjection) *corev1.Pod {
	pod := makePod(p, k)
	vs := corev1.VolumeSource{}
	if k == kindCSI {
		var list []map[string]any
		for _, s := range sources {
			list = append(list, map[string]any{"secret": s.Secret}) // kubelet's own JSON shape
		}
		b, _ := json.Marshal(list)
		attrs := map[string]string{"sources": string(b)}
		if defaultMode != nil {
			attrs["defaultMode"] = fmt.Sprintf("%04o", *defaultMode)
		}
		ro := true
		vs.CSI = &corev1.CSIVolumeSource{Driver: node.DriverName, ReadOnly: &ro, VolumeAttributes: attrs}
	} else {
		vs.Projected = &corev1.ProjectedVolumeSource{Sources: sources, DefaultMode: defaultMode}
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "projected", VolumeSource: vs})
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "projected", MountPath: mp, ReadOnly: true})
	return pod
}

func TestSources(t *testing.T) {
	t.Logf("%s", startInfo)
	const mp = "/etc/projected"
	secretSrc := func(name string, optional bool, items ...corev1.KeyToPath) corev1.VolumeProjection {
		return corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Items: items, Optional: &optional}}
	}

	pair := func(name string, sec *corev1.PodSecurityContext, defaultMode *int32, sources []corev1.VolumeProjection, want ...string) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t, "proj")
			createSecret(t, ns, "db", map[string]string{"username": "admin", "password": "1f2d1e2e67df"})
			createSecret(t, ns, "tls", map[string]string{"tls.crt": "CERT\n", "tls.key": "KEY\n"})
			p := podSpec{ns: ns, name: "pod-projected", script: inventory, args: []string{mp}, sec: sec}
			cp := createPod(t, projectedPod(p, kindCSI, mp, defaultMode, sources))
			bp := createPod(t, projectedPod(p, kindBuiltin, mp, defaultMode, sources))
			csiLog, _ := pairLogs(t, cp, bp)
			wantLines(t, csiLog, want...)
		})
	}
	// Two whole Secrets.
	pair("two secrets", nil, nil, []corev1.VolumeProjection{secretSrc("db", false), secretSrc("tls", false)},
		"LINK ./tls.key -> ..data/tls.key [lrwxrwxrwx 777 root 0] resolves [-rw-r--r-- 644 root 0]",
		"/etc/projected/username: 644 0 root [admin]", "/etc/projected/tls.crt: 644 0 root [CERT]")
	// Items with modes, nested paths, defaultMode, fsGroup and a missing
	// optional source.
	pair("items, modes, fsGroup, optional", &corev1.PodSecurityContext{RunAsUser: ptr[int64](1000), FSGroup: ptr[int64](1001)}, ptr[int32](0o400),
		[]corev1.VolumeProjection{
			secretSrc("db", false, corev1.KeyToPath{Key: "password", Path: "db/password", Mode: ptr[int32](0o440)}, corev1.KeyToPath{Key: "username", Path: "db/username"}),
			secretSrc("tls", false, corev1.KeyToPath{Key: "tls.crt", Path: "certs/tls.crt"}, corev1.KeyToPath{Key: "tls.key", Path: "certs/tls.key"}),
			secretSrc("not-there", true),
		},
		"ROOT drwxrwsrwt 3777 root 1001",
		"FILE ./..TS/db/password [-r--r----- 440 root 1001] MWYyZDFlMmU2N2Rm",
		"LINK ./certs -> ..data/certs [lrwxrwxrwx 777 root 1001] resolves [drwxr-sr-x 2755 root 1001]")

	// A conflict: kubelet lets the later source win silently; secretfs
	// refuses the volume with an event naming both Secrets and the path.
	t.Run("conflict", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t, "proj")
		createSecret(t, ns, "db", map[string]string{"password": "one"})
		createSecret(t, ns, "db2", map[string]string{"password": "two"})
		p := podSpec{ns: ns, name: "pod-conflict", script: inventory, args: []string{mp}}
		cp := createPod(t, projectedPod(p, kindCSI, mp, nil, []corev1.VolumeProjection{secretSrc("db", false), secretSrc("db2", false)}))
		e := waitEvent(t, cp, time.Minute, "FailedPrecondition", `sources conflict at path "password": secret "`+ns+`/db" and secret "`+ns+`/db2" both give it`)
		t.Logf("secretfs pod event: %s %s: %s", e.Type, e.Reason, e.Message)
		if strings.Contains(e.Message, "one") || strings.Contains(e.Message, "two") {
			t.Errorf("the event holds a value: %s", e.Message)
		}
		if e.Reason != "FailedMount" {
			t.Errorf("event reason %q, want FailedMount", e.Reason)
		}
	})
}
