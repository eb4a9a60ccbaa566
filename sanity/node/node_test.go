package node

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A busybox Pod runs to completion on the node and its log is read back;
// Stop puts back the sysctls kubelet changed.
func TestNodeRunsPod(t *testing.T) {
	t0 := time.Now()
	n := Start(t, Options{})
	// What the harness saved under the node lock, before kubelet started
	// (another package's node may have run until then).
	before := map[string]string{}
	for s, v := range n.sysctls {
		before[s] = v
	}
	t.Logf("control plane + node Ready in %v (node: prepare %v, containerd %v, images %v, Ready %v)",
		time.Since(t0).Round(time.Millisecond), n.Timings.Prepare.Round(time.Millisecond),
		n.Timings.Containerd.Round(time.Millisecond), n.Timings.Images.Round(time.Millisecond),
		n.Timings.NodeReady.Round(time.Millisecond))
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName: n.Name, HostNetwork: true, RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "c", Image: BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", "echo hello from $(hostname); id -u"}}},
		},
	}
	t1 := time.Now()
	pod, err := n.Client().CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := n.Client().CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			t.Logf("pod %s in %v", p.Status.Phase, time.Since(t1).Round(time.Millisecond))
			break
		}
		if time.Since(t1) > 2*time.Minute {
			t.Fatalf("pod still %s: %+v", p.Status.Phase, p.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := n.LogText(pod, "c")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "hello from") || !strings.Contains(out, "\n0\n") {
		t.Errorf("log %q", out)
	}
	n.Stop()
	for _, s := range kubeletSysctls {
		b, _ := os.ReadFile("/proc/sys/" + s)
		if strings.TrimSpace(string(b)) != before[s] {
			t.Errorf("sysctl %s = %q after Stop, was %q", s, b, before[s])
		}
	}
	if m := mountsUnder(n.Dir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
}
