package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The cases of Kubernetes' secret volume conformance tests (its e2e
// suite, secrets_volume.go), each case run as a
// secretfs CSI inline volume beside kubelet's own secret volume.

var conformanceData = map[string]string{"data-1": "value-1\n", "data-2": "value-2\n", "data-3": "value-3\n"}

func TestConformance(t *testing.T) {
	t.Logf("%s", startInfo)
	const mp = "/etc/secret-volume"

	simple := func(name string, src corev1.SecretVolumeSource, sec *corev1.PodSecurityContext, want ...string) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t, "conf")
			createSecret(t, ns, "secret-test", conformanceData)
			src.SecretName = "secret-test"
			log, _ := runPair(t, podSpec{ns: ns, name: "pod-secrets", script: inventory, args: []string{mp},
				vols: []vol{{"secret-volume", mp, src}}, sec: sec})
			wantLines(t, log, want...)
		})
	}

	// should be consumable from pods in volume
	simple("default mode", corev1.SecretVolumeSource{}, nil,
		"ROOT drwxrwxrwt 1777 root 0",
		"LINK ./data-1 -> ..data/data-1 [lrwxrwxrwx 777 root 0] resolves [-rw-r--r-- 644 root 0]",
		"/etc/secret-volume/data-1: 644 0 root [value-1]")
	// with defaultMode set
	simple("defaultMode 0400", corev1.SecretVolumeSource{DefaultMode: ptr[int32](0o400)}, nil,
		"/etc/secret-volume/data-1: 400 0 root [value-1]",
		"/etc/secret-volume/data-3: 400 0 root [value-3]")
	// as non-root with defaultMode and fsGroup set
	simple("non-root fsGroup defaultMode 0440", corev1.SecretVolumeSource{DefaultMode: ptr[int32](0o440)},
		&corev1.PodSecurityContext{RunAsUser: ptr[int64](1000), FSGroup: ptr[int64](1001)},
		"ROOT drwxrwsrwt 3777 root 1001",
		"/etc/secret-volume/data-1: 440 1001 root [value-1]")
	// with mappings
	simple("mappings", corev1.SecretVolumeSource{Items: []corev1.KeyToPath{{Key: "data-1", Path: "new-path-data-1"}}}, nil,
		"/etc/secret-volume/new-path-data-1: 644 0 root [value-1]")
	// with mappings and Item Mode set
	simple("mappings with item mode", corev1.SecretVolumeSource{Items: []corev1.KeyToPath{{Key: "data-1", Path: "new-path-data-1", Mode: ptr[int32](0o400)}}}, nil,
		"/etc/secret-volume/new-path-data-1: 400 0 root [value-1]")

	// should be able to mount in a volume regardless of a different secret
	// existing with same name in different namespace
	t.Run("same name in another namespace", func(t *testing.T) {
		t.Parallel()
		ns, other := newNamespace(t, "conf"), newNamespace(t, "conf-other")
		createSecret(t, ns, "secret-test", conformanceData)
		createSecret(t, other, "secret-test", map[string]string{"this_should_not_match_content_of_other_secret": "similarly_this_should_not_match_content_of_other_secret\n"})
		log, _ := runPair(t, podSpec{ns: ns, name: "pod-secrets", script: inventory, args: []string{mp},
			vols: []vol{{"secret-volume", mp, corev1.SecretVolumeSource{SecretName: "secret-test"}}}})
		wantLines(t, log, "/etc/secret-volume/data-1: 644 0 root [value-1]")
		if strings.Contains(log, "this_should_not_match") {
			t.Errorf("other namespace's Secret shows:\n%s", log)
		}
	})

	// should be consumable in multiple volumes in a pod
	t.Run("two volumes of one Secret", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t, "conf")
		createSecret(t, ns, "secret-test", conformanceData)
		src := corev1.SecretVolumeSource{SecretName: "secret-test"}
		log, _ := runPair(t, podSpec{ns: ns, name: "pod-secrets", script: inventory,
			args: []string{"/etc/secret-volume-1", "/etc/secret-volume-2"},
			vols: []vol{{"secret-volume-1", "/etc/secret-volume-1", src}, {"secret-volume-2", "/etc/secret-volume-2", src}}})
		wantLines(t, log, "/etc/secret-volume-1/data-1: 644 0 root [value-1]", "/etc/secret-volume-2/data-1: 644 0 root [value-1]")
	})

	// optional updates should be reflected in volume
	t.Run("optional updates", testOptionalUpdates)

	// Should fail non-optional pod creation due to secret object does not exist
	t.Run("missing non-optional Secret", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t, "conf")
		name := "nonexistent-secret-e2e"
		p := podSpec{ns: ns, name: "pod-secrets", script: inventory, args: []string{mp},
			vols: []vol{{"secret-volume", mp, corev1.SecretVolumeSource{SecretName: name}}}}
		failsToStart(t, p, []string{name}, []string{name})
	})
	// Should fail non-optional pod creation due to the key in the secret object does not exist
	t.Run("missing non-optional key", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t, "conf")
		createSecret(t, ns, "secret-test", conformanceData)
		p := podSpec{ns: ns, name: "pod-secrets", script: inventory, args: []string{mp},
			vols: []vol{{"secret-volume", mp, corev1.SecretVolumeSource{SecretName: "secret-test",
				Items: []corev1.KeyToPath{{Key: "data_4", Path: "value-4"}}}}}}
		failsToStart(t, p, []string{"data_4"}, []string{"data_4"})
	})
}

// failsToStart creates both Pods of p and checks that neither starts and
// that each gets a FailedMount event naming what is missing.
func failsToStart(t *testing.T, p podSpec, csiWant, builtinWant []string) {
	t.Helper()
	cp := createPod(t, makePod(p, kindCSI))
	bp := createPod(t, makePod(p, kindBuiltin))
	ce := waitEvent(t, cp, time.Minute, csiWant...)
	be := waitEvent(t, bp, time.Minute, builtinWant...)
	t.Logf("secretfs pod event: %s %s: %s", ce.Type, ce.Reason, ce.Message)
	t.Logf("kubelet pod event:  %s %s: %s", be.Type, be.Reason, be.Message)
	if ce.Reason != be.Reason {
		t.Errorf("DIFFERENTIAL: event reason %q, kubelet's volume %q", ce.Reason, be.Reason)
	}
	time.Sleep(3 * time.Second)
	for _, pod := range []*corev1.Pod{cp, bp} {
		got, err := kc.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase != corev1.PodPending {
			t.Errorf("%s is %s, want Pending", pod.Name, got.Status.Phase)
		}
	}
}

// testOptionalUpdates: three optional volumes; one Secret is deleted, one
// updated, one created while the container runs. The container prints the
// three volumes whenever they change; the final state must be seen in both
// Pods (kubelet's own volume takes a pod sync, ~1-2 min).
func testOptionalUpdates(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t, "conf")
	createSecret(t, ns, "s-test-opt-del", map[string]string{"data-1": "value-1"})
	createSecret(t, ns, "s-test-opt-upd", map[string]string{"data-1": "value-1"})
	opt := ptr(true)
	const loop = `
prev=
while true; do
  cur="del=$(cat /etc/secret-volumes/delete/data-1 2>/dev/null || echo MISSING) upd1=$(cat /etc/secret-volumes/update/data-1 2>/dev/null || echo MISSING) upd3=$(cat /etc/secret-volumes/update/data-3 2>/dev/null || echo MISSING) create=$(cat /etc/secret-volumes/create/data-1 2>/dev/null || echo MISSING)"
  if [ "$cur" != "$prev" ]; then echo "$cur"; prev=$cur; fi
  sleep 0.1
done`
	p := podSpec{ns: ns, name: "pod-secrets", script: loop, vols: []vol{
		{"deletes-volume", "/etc/secret-volumes/delete", corev1.SecretVolumeSource{SecretName: "s-test-opt-del", Optional: opt}},
		{"updates-volume", "/etc/secret-volumes/update", corev1.SecretVolumeSource{SecretName: "s-test-opt-upd", Optional: opt}},
		{"creates-volume", "/etc/secret-volumes/create", corev1.SecretVolumeSource{SecretName: "s-test-opt-create", Optional: opt}},
	}}
	cp := createPod(t, makePod(p, kindCSI))
	bp := createPod(t, makePod(p, kindBuiltin))
	cp = waitPod(t, cp, 2*time.Minute, corev1.PodRunning)
	bp = waitPod(t, bp, 2*time.Minute, corev1.PodRunning)
	const before = "del=value-1 upd1=value-1 upd3=MISSING create=MISSING"
	const after = "del=MISSING upd1=MISSING upd3=value-3 create=value-1"
	for _, pod := range []*corev1.Pod{cp, bp} {
		waitLog(t, pod, before, 30*time.Second)
	}
	ctx := context.Background()
	t0 := time.Now()
	if err := kc.CoreV1().Secrets(ns).Delete(ctx, "s-test-opt-del", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	updateSecret(t, ns, "s-test-opt-upd", map[string]string{"data-3": "value-3"})
	createSecret(t, ns, "s-test-opt-create", map[string]string{"data-1": "value-1"})
	csiAt := waitLog(t, cp, after, 30*time.Second)
	t.Logf("secretfs volume: all three changes seen %v after the first API call", csiAt.Sub(t0).Round(time.Millisecond))
	bAt := waitLog(t, bp, after, 4*time.Minute)
	t.Logf("kubelet's volume: all three changes seen %v after the first API call", bAt.Sub(t0).Round(time.Millisecond))
	t.Logf("DIFFERENTIAL: both containers end at %q", after)
}

// waitLog waits until pod's container log has line and returns the time
// containerd logged it.
func waitLog(t *testing.T, pod *corev1.Pod, line string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines, _ := theNode.Logs(pod, "c")
		for _, l := range lines {
			if l.Text == line {
				return l.Time
			}
		}
		if time.Now().After(deadline) {
			var sb strings.Builder
			for _, l := range lines {
				sb.WriteString("    " + l.Time.Format(time.RFC3339Nano) + " " + l.Text + "\n")
			}
			t.Fatalf("%s never printed %q within %v; log:\n%s\nevents:\n%s", pod.Name, line, timeout, sb.String(), eventText(pod))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
