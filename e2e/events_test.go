package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRefreshFailureEvents: on a real kubelet (pod info from
// podInfoOnMount), the Secret under a running Pod's non-optional volume is
// deleted: the container still reads the last good version and the Pod
// gets a Warning from secretfs naming the volume and the Secret; the
// Secret comes back with a new value: the container reads it and the Pod
// gets a Normal event.
func TestRefreshFailureEvents(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t, "events")
	createSecret(t, ns, "s", map[string]string{"k": "v0"})
	const loop = `prev=
while :; do
  read -r v < /etc/foo/k
  if [ "$v" != "$prev" ]; then echo "$v"; prev=$v; fi
  sleep 0.1
done`
	p := podSpec{ns: ns, name: "reader", script: loop,
		vols: []vol{{"foo", "/etc/foo", corev1.SecretVolumeSource{SecretName: "s"}}}}
	pod := waitPod(t, createPod(t, makePod(p, kindCSI)), 2*time.Minute, corev1.PodRunning)
	waitLog(t, pod, "v0", 30*time.Second)

	if err := kc.CoreV1().Secrets(ns).Delete(context.Background(), "s", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w := waitEvent(t, pod, 30*time.Second, "volume foo: Secret "+ns+"/s was deleted")
	if w.Type != corev1.EventTypeWarning || w.Reason != "SecretRefreshFailed" || w.Source.Component != "secretfs" {
		t.Errorf("event %s %s from %s: want a Warning SecretRefreshFailed from secretfs", w.Type, w.Reason, w.Source.Component)
	}
	createSecret(t, ns, "s", map[string]string{"k": "v1"})
	waitLog(t, pod, "v1", 30*time.Second)
	lines, _ := theNode.Logs(pod, "c")
	var read []string
	for _, l := range lines {
		read = append(read, l.Text)
	}
	if len(read) != 2 {
		t.Errorf("the container read %q, want v0 then v1 (the last good version while the Secret was gone)", read)
	}
	n := waitEvent(t, pod, 30*time.Second, "volume foo: follows Secret "+ns+"/s again")
	if n.Type != corev1.EventTypeNormal || n.Reason != "SecretRefreshRecovered" {
		t.Errorf("event %s %s: want a Normal SecretRefreshRecovered", n.Type, n.Reason)
	}
}
