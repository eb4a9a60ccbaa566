package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/secretfs/secretfs/sanity/node"
)

// secretfs exec as a Pod's entrypoint (deploy/examples/exec/): the
// example Pods as shipped, with only what this node needs changed (the
// images, which are local; the namespace; the node; the Secret's name)
// and /app replaced by a shell that prints its variable at start.

// execApp is /app: it says what it started with and ends on TERM.
const execApp = `echo "start V=$V"; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done`

var (
	imageOnce sync.Once
	imageErr  error
)

// ensurePluginImage builds the static binary and imports it as
// pluginImage (as deploy/Dockerfile makes it: nothing else inside), once.
func ensurePluginImage(t *testing.T) {
	t.Helper()
	imageOnce.Do(func() {
		work, err := os.MkdirTemp("", "secretfs-e2e-image-")
		if err != nil {
			imageErr = err
			return
		}
		defer os.RemoveAll(work)
		bin := filepath.Join(work, "secretfs")
		build := exec.Command("go", "build", "-trimpath", "-o", bin, "../cmd/secretfs")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		tarball, err := node.BuildBinaryImage(ctx, bin, pluginImage, work)
		if err == nil {
			err = theNode.ImportImage(ctx, tarball)
		}
		imageErr = err
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
}

// examplePod reads deploy/examples/exec/FILE and makes it runnable here.
func examplePod(t *testing.T, file, ns, secretName string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "examples", "exec", file))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(b, &pod); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	pod.Namespace = ns
	zero := int64(0)
	pod.Spec.NodeName, pod.Spec.HostNetwork, pod.Spec.TerminationGracePeriodSeconds = theNode.Name, true, &zero
	pod.Spec.InitContainers[0].Image, pod.Spec.InitContainers[0].ImagePullPolicy = pluginImage, corev1.PullNever
	app := &pod.Spec.Containers[0]
	app.Name, app.Image, app.ImagePullPolicy = "c", node.BusyboxImage, corev1.PullNever
	i := slices.Index(app.Command, "--")
	if i < 0 || !slices.Equal(app.Command[i+1:], []string{"/app"}) {
		t.Fatalf("%s: the app container's command %q does not end in -- /app", file, app.Command)
	}
	app.Command = append(app.Command[:i+1], "sh", "-c", execApp)
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.CSI != nil:
			v.CSI.VolumeAttributes["secretName"] = secretName
		case v.Secret != nil:
			v.Secret.SecretName = secretName
		}
	}
	return &pod
}

// TestExecPodSecretfsVolume: the app sees each update of the Secret,
// restarted by secretfs exec, within 1 s of the API call (the example's
// --splay 500ms and --debounce 100ms included).
func TestExecPodSecretfsVolume(t *testing.T) {
	ensurePluginImage(t)
	ns := newNamespace(t, "exec")
	createSecret(t, ns, "s", map[string]string{"V": "v0"})
	pod := createPod(t, examplePod(t, "app-secretfs-volume.yaml", ns, "s"))
	pod = waitPod(t, pod, 2*time.Minute, corev1.PodRunning)
	waitLog(t, pod, "start V=v0", 30*time.Second)
	var lat []time.Duration
	for i := 1; i <= 3; i++ {
		v := fmt.Sprintf("v%d", i)
		t0 := time.Now()
		updateSecret(t, ns, "s", map[string]string{"V": v})
		at := waitLog(t, pod, "start V="+v, 30*time.Second)
		lat = append(lat, at.Sub(t0))
	}
	t.Logf("LATENCY exec restart, secretfs volume (update call → app started with the new value): %s", summary(lat))
	logExcerpt(t, pod)
	if m := slices.Max(lat); m > time.Second {
		t.Errorf("the app saw an update %v after the API call, over 1 s", m)
	}
	if p := getPod(t, pod); p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("the container itself restarted %d times: secretfs exec should restart the app inside it", p.Status.ContainerStatuses[0].RestartCount)
	}
}

// TestExecPodSecretVolume: the same Pod on kubelet's own `secret:`
// volume. kubelet writes the new version at its next sync of the Pod (a
// minute or more); a watcher container beside the app says when the file
// changed, and the app must be restarted within 1 s of that.
func TestExecPodSecretVolume(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: kubelet takes over a minute to update its secret volume")
	}
	ensurePluginImage(t)
	ns := newNamespace(t, "exec")
	createSecret(t, ns, "s", map[string]string{"V": "v0"})
	pod := examplePod(t, "app-secret-volume.yaml", ns, "s")
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
		Name: "w", Image: node.BusyboxImage, ImagePullPolicy: corev1.PullNever,
		Command:      []string{"sh", "-c", `p=; while :; do v=$(cat /etc/secret/V); [ "$v" != "$p" ] && echo "file V=$v" && p=$v; sleep 0.02; done`},
		VolumeMounts: []corev1.VolumeMount{{Name: "secret", MountPath: "/etc/secret", ReadOnly: true}},
	})
	pod = createPod(t, pod)
	pod = waitPod(t, pod, 2*time.Minute, corev1.PodRunning)
	waitLog(t, pod, "start V=v0", 30*time.Second)
	t0 := time.Now()
	updateSecret(t, ns, "s", map[string]string{"V": "v1"})
	at := waitLog(t, pod, "start V=v1", 5*time.Minute)
	seen := waitContainerLog(t, pod, "w", "file V=v1")
	t.Logf("LATENCY exec restart, kubelet's secret volume: update call → file changed %v (kubelet), file changed → app started with it %v (secretfs exec)",
		seen.Sub(t0).Round(time.Millisecond), at.Sub(seen).Round(time.Millisecond))
	logExcerpt(t, pod)
	if d := at.Sub(seen); d > time.Second {
		t.Errorf("the app restarted %v after kubelet switched the volume, over 1 s", d)
	}
}

func getPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	p, err := kc.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitContainerLog returns the CRI time of container's line.
func waitContainerLog(t *testing.T, pod *corev1.Pod, container, line string) time.Time {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		lines, _ := theNode.Logs(pod, container)
		for _, l := range lines {
			if l.Text == line {
				return l.Time
			}
		}
	}
	t.Fatalf("%s/%s never printed %q", pod.Name, container, line)
	return time.Time{}
}

// logExcerpt puts the app container's log (secretfs exec's lines and the
// app's) in the test log: what the closing note of issue 21 shows.
func logExcerpt(t *testing.T, pod *corev1.Pod) {
	lines, err := theNode.Logs(pod, "c")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&sb, "  %s %s\n", l.Time.Format("15:04:05.000"), l.Text)
	}
	t.Logf("POD LOG %s/%s (container running secretfs exec):\n%s", pod.Namespace, pod.Name, sb.String())
}
