package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestSubPathFollows: the same Pod twice, once on a secretfs volume with
// subPathUpdates "true" and once on kubelet's own `secret:` volume, each
// mounting the Secret's `username` with `subPath: username` and the whole
// volume beside it, and printing both values whenever they change. After
// an update the secretfs subPath file shows the new value within 1 s;
// kubelet's subPath file still shows the old one after kubelet has
// updated its own whole volume (at its next pod sync: from at once to
// ~1-1.5 min with v1.37's defaults) and as long again, 10 s at least;
// that is kubernetes/kubernetes#50345.
func TestSubPathFollows(t *testing.T) {
	ns := newNamespace(t, "subpath")
	createSecret(t, ns, "s", map[string]string{"username": "v0", "password": "p0"})
	const loop = `ps=; pw=
while :; do
  read -r s < /etc/username; read -r w < /etc/whole/username
  if [ "$s" != "$ps" ]; then echo "sub=$s"; ps=$s; fi
  if [ "$w" != "$pw" ]; then echo "whole=$w"; pw=$w; fi
  sleep 0.02
done`
	spec := podSpec{ns: ns, name: "subpath", script: loop,
		vols: []vol{{"secret", "/etc/whole", corev1.SecretVolumeSource{SecretName: "s"}}}}
	var pods []*corev1.Pod
	for _, k := range []kind{kindCSI, kindBuiltin} {
		pod := makePod(spec, k)
		if k == kindCSI {
			pod.Spec.Volumes[0].CSI.VolumeAttributes["subPathUpdates"] = "true"
		}
		c := &pod.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "secret", MountPath: "/etc/username", SubPath: "username", ReadOnly: true})
		pods = append(pods, createPod(t, pod))
	}
	for i, pod := range pods {
		pods[i] = waitPod(t, pod, 2*time.Minute, corev1.PodRunning)
		waitLog(t, pods[i], "sub=v0", 30*time.Second)
		waitLog(t, pods[i], "whole=v0", 30*time.Second)
	}
	csiPod, builtinPod := pods[0], pods[1]

	t0 := time.Now()
	updateSecret(t, ns, "s", map[string]string{"username": "v1", "password": "p1"})
	sub := waitLog(t, csiPod, "sub=v1", 10*time.Second).Sub(t0)
	whole := waitLog(t, csiPod, "whole=v1", 10*time.Second).Sub(t0)
	if sub > time.Second {
		t.Errorf("secretfs subPath: the update showed after %v, over 1 s", sub)
	}
	// kubelet's own volume follows at its next pod sync; its subPath
	// bind never does.
	kubelet := waitLog(t, builtinPod, "whole=v1", 5*time.Minute).Sub(t0)
	// Give its subPath file as long again, and 10 s at least: what is
	// measured is that it stays old.
	time.Sleep(max(kubelet, 10*time.Second-time.Since(t0)))
	checked := time.Since(t0)
	if logHas(t, builtinPod, "sub=v1") {
		t.Errorf("kubelet's subPath file followed the update: the differential is gone")
	}
	if !logHas(t, builtinPod, "sub=v0") {
		t.Errorf("kubelet's subPath file never showed v0")
	}
	t.Logf("SUBPATH secretfs subPath: update seen after %v (whole volume %v); kubelet subPath: still old after %v (its whole volume updated after %v)",
		sub.Round(time.Millisecond), whole.Round(time.Millisecond), checked.Round(time.Second), kubelet.Round(time.Second))

	// And the secretfs subPath file keeps following, with the other
	// key's changes too.
	for i := 2; i <= 4; i++ {
		v := fmt.Sprintf("v%d", i)
		updateSecret(t, ns, "s", map[string]string{"username": v, "password": "p" + v})
		waitLog(t, csiPod, "sub="+v, 10*time.Second)
	}
}

func logHas(t *testing.T, pod *corev1.Pod, line string) bool {
	t.Helper()
	lines, err := theNode.Logs(pod, "c")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if strings.TrimSpace(l.Text) == line {
			return true
		}
	}
	return false
}
