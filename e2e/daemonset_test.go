package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/secretfs/secretfs/sanity/cluster"
	"github.com/secretfs/secretfs/sanity/node"
)

// pluginImage is the secretfs image built locally for the DaemonSet test.
const pluginImage = "secretfs.local/secretfs:e2e"

// TestDaemonSet deploys secretfs the way a cluster admin does: deploy/'s
// CSIDriver, RBAC and DaemonSet (the image rewritten to one built here, the
// kubelet folder to the node's --root-dir), with kube-controller-manager
// creating the DaemonSet's Pod, kubelet running it in containerd, the plugin
// registering through kubelet's plugins_registry from inside its container,
// and then the seed's first Pod (mysecret at /etc/foo) read through it.
//
// The host-process plugin of the other tests is stopped meanwhile and
// started again at the end. Not parallel: Go runs it before any parallel
// test resumes, so nothing else uses the node meanwhile.
//
// kube-controller-manager is built on first use, as TestMain builds the
// other binaries (`sanity/cluster/build.sh kube-controller-manager`, ~40 s
// with the warm build cache); with -short the test skips instead.
func TestDaemonSet(t *testing.T) {
	if !cluster.Built("kube-controller-manager", "kubectl") && testing.Short() {
		t.Skip("-short: kube-controller-manager or kubectl not built; run sanity/cluster/build.sh kube-controller-manager kubectl first")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	t0 := time.Now()
	step := func(what string) { t.Logf("%6.1fs %s", time.Since(t0).Seconds(), what) }
	if err := cluster.EnsureBinaries(ctx, "kube-controller-manager", "kubectl"); err != nil {
		t.Fatal(err)
	}
	c := theNode.C
	work := t.TempDir()

	// The image: the static binary alone, as deploy/Dockerfile makes it.
	bin := filepath.Join(work, "secretfs")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "../cmd/secretfs")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tarball, err := node.BuildBinaryImage(ctx, bin, pluginImage, work)
	if err != nil {
		t.Fatal(err)
	}
	if err := theNode.ImportImage(ctx, tarball); err != nil {
		t.Fatal(err)
	}
	step("plugin built, image " + pluginImage + " imported")

	// Privileged Pods: see node.WithAPIServerFlags.
	api, err := node.WithAPIServerFlags(ctx, c, "--allow-privileged=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := api.Restore(context.Background()); err != nil {
			t.Errorf("restoring kube-apiserver: %v", err)
		}
	})
	step("kube-apiserver with --allow-privileged")
	kcm, err := node.StartControllerManager(ctx, c, theNode.Dir, "daemonset", "serviceaccount", "root-ca-cert-publisher")
	if err != nil {
		t.Fatal(err)
	}
	// Before the other tests resume: their namespaces' "default" accounts
	// are made without token automount by EnsureNamespace.
	t.Cleanup(func() { kcm.Stop() })
	step("kube-controller-manager running (daemonset, serviceaccount, root-ca-cert-publisher)")

	// Swap the host-process plugin for the DaemonSet; put it back at the end.
	if err := plugin.Stop(); err != nil {
		t.Fatal(err)
	}
	waitCSINode(t, false, time.Minute)
	// As on a fresh node: the plugin makes its socket folder itself.
	if err := os.RemoveAll(filepath.Join(theNode.KubeletRoot, "plugins", node.DriverName)); err != nil {
		t.Fatal(err)
	}
	step("host plugin stopped, driver deregistered")
	t.Cleanup(func() {
		teardownDaemonSet(t)
		p, err := theNode.StartPlugin(context.Background(), bin, "--log-level=debug")
		if err != nil {
			t.Errorf("restarting the host plugin: %v", err)
			return
		}
		plugin = p
	})

	kubectl := filepath.Join(cluster.BinDir(), "kubectl")
	for _, f := range []string{"../deploy/csidriver.yaml", "../deploy/rbac.yaml", "../deploy/secretproviderclass-crd.yaml"} {
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubeconfig, "apply", "-f", f).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply -f %s: %v\n%s", f, err, out)
		}
	}
	keeperDS := rewriteManifest(t, c, "keeper.yaml", "keeper")
	if _, err := kc.AppsV1().DaemonSets(keeperDS.Namespace).Create(ctx, keeperDS, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runningPod(t, ctx, keeperDS, kcm)
	step("keeper DaemonSet running")
	ds := rewriteDaemonSet(t, c)
	if _, err := kc.AppsV1().DaemonSets(ds.Namespace).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	step("deploy/ applied (CSIDriver, RBAC, keeper, DaemonSet)")

	// There is no scheduler: bind the DaemonSet's Pod as it would.
	dsPod := runningPod(t, ctx, ds, kcm)
	step("DaemonSet Pod " + dsPod.Name + " running")
	if err := waitCSINodeErr(true, 2*time.Minute); err != nil {
		dumpDaemonSet(t, ds, []corev1.Pod{*dsPod}, kcm)
		t.Fatal(err)
	}
	step("plugin in the Pod registered with kubelet (CSINode lists " + node.DriverName + ")")

	// The seed's first Pod, beside kubelet's own secret volume.
	ns := newNamespace(t, "daemonset")
	createSecret(t, ns, "mysecret", map[string]string{"username": "admin", "password": "1f2d1e2e67df"})
	log, _ := runPair(t, podSpec{ns: ns, name: "mysecret", script: inventory, args: []string{"/etc/foo"},
		vols: []vol{{"foo", "/etc/foo", corev1.SecretVolumeSource{SecretName: "mysecret"}}}})
	wantLines(t, log,
		"/etc/foo/username: 644 0 root [admin]", "/etc/foo/password: 644 0 root [1f2d1e2e67df]",
		"LINK ./..data -> ..TS [lrwxrwxrwx 777 root 0] resolves [drwxr-xr-x 755 root 0]")
	step("seed Pod read mysecret through the DaemonSet's plugin")
	if plog, err := theNode.LogText(dsPod, "secretfs"); err == nil {
		if !strings.Contains(plog, "NodePublishVolume") {
			t.Errorf("the DaemonSet's plugin logged no NodePublishVolume: the volume came from elsewhere?\n%s", indent(plog))
		}
		if strings.Contains(plog, "no keeper") {
			t.Errorf("the plugin did not reach the keeper DaemonSet:\n%s", indent(plog))
		}
	} else {
		t.Errorf("plugin container log: %v", err)
	}

	// What the liveness probe asks (host network: the Pod's port is the
	// node's), and no restart or warning so far.
	if resp, err := http.Get("http://127.0.0.1:9808/healthz"); err != nil {
		t.Errorf("liveness endpoint: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("liveness endpoint: %s", resp.Status)
		}
	}
	if p, err := kc.CoreV1().Pods(dsPod.Namespace).Get(ctx, dsPod.Name, metav1.GetOptions{}); err != nil {
		t.Error(err)
	} else {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount != 0 {
				t.Errorf("plugin container %s restarted %d times; events:\n%s", cs.Name, cs.RestartCount, eventText(p))
			}
		}
		for _, e := range events(p) {
			// MissingClusterDNS: the harness's kubelet has no cluster DNS.
			if e.Type != corev1.EventTypeNormal && e.Reason != "MissingClusterDNS" {
				t.Errorf("DaemonSet Pod event %s %s: %s", e.Type, e.Reason, e.Message)
			}
		}
	}

	// Unpublish through the DaemonSet's plugin, before it goes.
	zero := int64(0)
	for _, k := range []kind{kindCSI, kindBuiltin} {
		kc.CoreV1().Pods(ns).Delete(ctx, "mysecret-"+string(k), metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}
	if err := waitNoSecretfsMounts(2 * time.Minute); err != nil {
		t.Error(err)
	}
	step("seed Pod deleted, its volume unpublished")

	// The plugin replaced under a reading Pod, as a DaemonSet rollout does:
	// its Pod is deleted (SIGTERM leaves the mounts to the keeper), the
	// controller makes a new one, which takes the mounts back. The reader
	// must never fail, and later updates must still arrive.
	createSecret(t, ns, "up", map[string]string{"k": "v0"})
	// The value has no newline, so read "fails" at EOF having read it;
	// only a failed open (or an empty read) is an error.
	const loop = `prev=
while :; do
  v=
  { read -r v || [ -n "$v" ]; } < /etc/foo/k || { echo ERR; sleep 0.1; continue; }
  if [ "$v" != "$prev" ]; then echo "$v"; prev=$v; fi
done`
	reader := createPod(t, makePod(podSpec{ns: ns, name: "reader", script: loop,
		vols: []vol{{"foo", "/etc/foo", corev1.SecretVolumeSource{SecretName: "up"}}}}, kindCSI))
	reader = waitPod(t, reader, 2*time.Minute, corev1.PodRunning)
	waitLog(t, reader, "v0", 30*time.Second)
	old := dsPod.Name
	dsPod = replacePod(t, ctx, ds, dsPod, kcm)
	step("plugin Pod " + old + " replaced by " + dsPod.Name)
	updateSecret(t, ns, "up", map[string]string{"k": "v1"})
	waitLog(t, reader, "v1", 30*time.Second)
	step("an update after the replacement reached the reading Pod")
	lines, _ := theNode.Logs(reader, "c")
	for _, l := range lines {
		if l.Text == "ERR" {
			t.Errorf("the reading Pod failed a read at %s while the plugin was replaced", l.Time.Format(time.RFC3339Nano))
		}
	}
	if plog, err := theNode.LogText(dsPod, "secretfs"); err != nil || !strings.Contains(plog, "volume taken over") {
		t.Errorf("the new plugin did not take the mount over (%v):\n%s", err, indent(plog))
	}

	dsPod = keeperThenPlugin(t, ctx, ns, reader, keeperDS, ds, dsPod, kcm, step)
	dsPod = rollBoth(t, ctx, ns, reader, keeperDS, ds, dsPod, kcm, step)
	zero = int64(0)
	kc.CoreV1().Pods(ns).Delete(ctx, reader.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err := waitNoSecretfsMounts(2 * time.Minute); err != nil {
		t.Error(err)
	}
	step("reading Pod deleted, its volume unpublished by the new plugin")
	bothKilled(t, ctx, ns, keeperDS, ds, dsPod, kcm, step)
}

// keeperThenPlugin replaces the keeper's Pod (the new keeper gets every
// mount from the running plugin), then the plugin's (the next plugin
// takes them from the new keeper). The reading Pod must fail no read and
// get the updates after each step. It returns the new plugin Pod.
func keeperThenPlugin(t *testing.T, ctx context.Context, ns string, reader *corev1.Pod,
	keeperDS, ds *appsv1.DaemonSet, dsPod *corev1.Pod, kcm *node.ControllerManager, step func(string)) *corev1.Pod {
	t.Helper()
	since := time.Now()
	replacePod(t, ctx, keeperDS, runningPod(t, ctx, keeperDS, kcm), kcm)
	step("keeper Pod replaced")
	updateSecret(t, ns, "up", map[string]string{"k": "v2"})
	waitLog(t, reader, "v2", 30*time.Second)
	dsPod = replacePod(t, ctx, ds, dsPod, kcm)
	step("plugin Pod replaced after the keeper's: " + dsPod.Name)
	updateSecret(t, ns, "up", map[string]string{"k": "v3"})
	waitLog(t, reader, "v3", 30*time.Second)
	if errs := errLines(t, reader, since); len(errs) > 0 {
		t.Errorf("the reading Pod failed %d reads while the keeper and then the plugin were replaced, first at %s", len(errs), errs[0].Format(time.RFC3339Nano))
	}
	if plog, err := theNode.LogText(dsPod, "secretfs"); err != nil || !strings.Contains(plog, "volume taken over") {
		t.Errorf("the plugin after the new keeper did not take the mount over (%v):\n%s", err, indent(plog))
	}
	step("keeper then plugin replaced: no failed read, updates arrived after each")
	return dsPod
}

// rollBoth changes both DaemonSets' Pod templates at once, as a helm
// upgrade of the image does: the controller replaces both Pods on the
// node in its own order. The reading Pod must fail no read and get the
// next update. It returns the new plugin Pod.
func rollBoth(t *testing.T, ctx context.Context, ns string, reader *corev1.Pod,
	keeperDS, ds *appsv1.DaemonSet, dsPod *corev1.Pod, kcm *node.ControllerManager, step func(string)) *corev1.Pod {
	t.Helper()
	since := time.Now()
	oldKeeper := runningPod(t, ctx, keeperDS, kcm)
	patch := []byte(fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"secretfs.dev/rolled":%q}}}}}`, since.Format(time.RFC3339Nano)))
	for _, d := range []*appsv1.DaemonSet{keeperDS, ds} {
		if _, err := kc.AppsV1().DaemonSets(d.Namespace).Patch(ctx, d.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	newPlugin := rolledPod(t, ctx, []*appsv1.DaemonSet{ds, keeperDS}, ds, dsPod.Name, kcm)
	rolledPod(t, ctx, []*appsv1.DaemonSet{ds, keeperDS}, keeperDS, oldKeeper.Name, kcm)
	step("both DaemonSets rolled: plugin " + newPlugin.Name)
	updateSecret(t, ns, "up", map[string]string{"k": "v4"})
	waitLog(t, reader, "v4", time.Minute)
	if errs := errLines(t, reader, since); len(errs) > 0 {
		t.Errorf("the reading Pod failed %d reads while both DaemonSets rolled, first at %s", len(errs), errs[0].Format(time.RFC3339Nano))
	}
	step("both rolled: no failed read, the next update arrived")
	return newPlugin
}

// rolledPod binds the Pods of every DaemonSet in all (there is no
// scheduler) until ds has a running Pod other than old, and returns it.
func rolledPod(t *testing.T, ctx context.Context, all []*appsv1.DaemonSet, ds *appsv1.DaemonSet, old string, kcm *node.ControllerManager) *corev1.Pod {
	t.Helper()
	sel := metav1.FormatLabelSelector(ds.Spec.Selector)
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		for _, d := range all {
			if _, err := theNode.BindPods(ctx, d.Namespace, metav1.FormatLabelSelector(d.Spec.Selector)); err != nil {
				t.Log(err)
			}
		}
		l, err := kc.CoreV1().Pods(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range l.Items {
			if p.Name != old && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(&p) {
				return &l.Items[i]
			}
		}
		if time.Now().After(deadline) {
			dumpDaemonSet(t, ds, l.Items, kcm)
			t.Fatalf("DaemonSet %s did not roll within 5 min", ds.Name)
		}
	}
}

// bothKilled deletes both Pods at once (the handover goes through the old
// keeper: the reader reads the next update within 10 s of the plugin
// being back), then tries the last resort: the keeper's and the plugin's
// processes SIGKILLed at once (as a node-level OOM would), so no process holds the
// mounts and they die; the kubelet restarts both containers. A reading
// Pod whose volumeMount has mountPropagation HostToContainer reads again
// once kubelet republishes the volume: the plugin mounts a fresh volume on
// top of its dead one at the target, and the mount propagates into the
// container. Measured: how long after the plugin is back.
func bothKilled(t *testing.T, ctx context.Context, ns string,
	keeperDS, ds *appsv1.DaemonSet, dsPod *corev1.Pod, kcm *node.ControllerManager, step func(string)) {
	t.Helper()
	createSecret(t, ns, "last", map[string]string{"k": "w0"})
	const loop = `prev=
while :; do
  v=
  { read -r v || [ -n "$v" ]; } < /etc/foo/k || { echo ERR; sleep 0.1; continue; }
  if [ "$v" != "$prev" ]; then echo "$v"; prev=$v; fi
  sleep 0.05
done`
	pod := makePod(podSpec{ns: ns, name: "propagated", script: loop,
		vols: []vol{{"foo", "/etc/foo", corev1.SecretVolumeSource{SecretName: "last"}}}}, kindCSI)
	hc := corev1.MountPropagationHostToContainer
	pod.Spec.Containers[0].VolumeMounts[0].MountPropagation = &hc
	reader := waitPod(t, createPod(t, pod), 2*time.Minute, corev1.PodRunning)
	waitLog(t, reader, "w0", 30*time.Second)
	// Both Pods deleted at once (their graces as the chart sets them):
	// the stops hand over through the old keeper, and the reader reads
	// the next update within 10 s of the plugin being back.
	keeperPod := runningPod(t, ctx, keeperDS, kcm)
	zero := int64(0)
	deleted := time.Now()
	for _, p := range []*corev1.Pod{keeperPod, dsPod} {
		if err := kc.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	updateSecret(t, ns, "last", map[string]string{"k": "w1"})
	dsPod = rolledPod(t, ctx, []*appsv1.DaemonSet{ds, keeperDS}, ds, dsPod.Name, kcm)
	back := time.Now()
	rolledPod(t, ctx, []*appsv1.DaemonSet{ds, keeperDS}, keeperDS, keeperPod.Name, kcm)
	seen := waitLog(t, reader, "w1", time.Minute)
	if d := seen.Sub(back); d > 10*time.Second {
		t.Errorf("after both Pods were deleted the reader read the next update %v after the plugin was back, want within 10 s", d)
	}
	step(fmt.Sprintf("both Pods deleted at once: plugin back %.1fs later, the reader read w1 %.1fs after that; %d failed reads",
		back.Sub(deleted).Seconds(), seen.Sub(back).Seconds(), len(errLines(t, reader, deleted))))

	target, oldID := secretfsTarget(t, reader)
	// The two processes of this node's DaemonSets (their command lines
	// name the node's folder), by PID.
	// The processes of the Pods replaced above may still be stopping.
	var pids []int
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if pids = nodeProcesses(t, "secretfs", theNode.Dir); len(pids) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("found %d secretfs processes of the node's DaemonSets, want the keeper and the plugin: %v", len(pids), pids)
		}
	}
	killed := time.Now()
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	updateSecret(t, ns, "last", map[string]string{"k": "w2"})
	back = waitRestarted(t, ctx, dsPod)
	step(fmt.Sprintf("keeper and plugin SIGKILLed; the plugin's container back %.1fs later", back.Sub(killed).Seconds()))
	remounted := waitNewMount(target, oldID, 4*time.Minute)
	if remounted.IsZero() {
		t.Fatalf("no fresh secretfs mount over the dead one at %s 4 min after the plugin was back", target)
	}
	seen = waitLog(t, reader, "w2", time.Minute)
	errs := errLines(t, reader, killed)
	step(fmt.Sprintf("kubelet republished %.1fs after the plugin was back (a mount over the dead one); the HostToContainer reader read w2 %.1fs after the plugin was back; %d failed reads meanwhile",
		remounted.Sub(back).Seconds(), seen.Sub(back).Seconds(), len(errs)))
	kc.CoreV1().Pods(ns).Delete(ctx, reader.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err := waitNoSecretfsMounts(2 * time.Minute); err != nil {
		t.Errorf("after the last resort: %v", err)
	}
}

// nodeProcesses lists the PIDs of processes named name whose command
// line mentions dir (the harness node's folder): the node's own
// containers, never anything else on the machine.
func nodeProcesses(t *testing.T, name, dir string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) == name && strings.Contains(string(b), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitRestarted waits until pod's container has restarted and is ready
// again, and says when.
func waitRestarted(t *testing.T, ctx context.Context, pod *corev1.Pod) time.Time {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		p, err := kc.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount > 0 && cs.Ready {
				return time.Now()
			}
		}
	}
	t.Fatalf("Pod %s did not restart within 3 min", pod.Name)
	return time.Time{}
}

// replacePod deletes a DaemonSet's Pod, waits until it is gone and
// returns the one the controller makes instead, once it runs.
func replacePod(t *testing.T, ctx context.Context, ds *appsv1.DaemonSet, pod *corev1.Pod, kcm *node.ControllerManager) *corev1.Pod {
	t.Helper()
	if err := kc.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, err := kc.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pod %s still there a minute after its deletion", pod.Name)
		}
	}
	return runningPod(t, ctx, ds, kcm)
}

// errLines returns the times of the reader's failed reads ("ERR") after since.
func errLines(t *testing.T, reader *corev1.Pod, since time.Time) []time.Time {
	t.Helper()
	lines, err := theNode.Logs(reader, "c")
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, l := range lines {
		if l.Text == "ERR" && l.Time.After(since) {
			out = append(out, l.Time)
		}
	}
	return out
}

// secretfsTarget is the node's path of pod's secretfs volume and the
// mount's id.
func secretfsTarget(t *testing.T, pod *corev1.Pod) (string, int) {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("fuse.secretfs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mi := range infos {
		if strings.Contains(mi.Mountpoint, "/pods/"+string(pod.UID)+"/volumes/") {
			return mi.Mountpoint, mi.ID
		}
	}
	t.Fatalf("no secretfs mount of Pod %s on the node", pod.Name)
	return "", 0
}

// waitNewMount waits until the secretfs mount on top of target is not
// mount oldID any more, and returns when; zero on timeout.
func waitNewMount(target string, oldID int, timeout time.Duration) time.Time {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		// Every mount at target, in mount order: a new one may lie on
		// top of the old (SingleEntryFilter stops at the first).
		infos, err := mountinfo.GetMounts(func(mi *mountinfo.Info) (bool, bool) { return mi.Mountpoint != target, false })
		if err != nil || len(infos) == 0 {
			continue
		}
		if top := infos[len(infos)-1]; top.FSType == "fuse.secretfs" && top.ID != oldID {
			return time.Now()
		}
	}
	return time.Time{}
}

// rewriteDaemonSet reads deploy/daemonset.yaml and adapts it to the
// harness node, as a kustomize overlay would: kubelet's folder is the
// node's --root-dir; the image is the local one (never pulled); host
// network (the node has no Pod network, no Service routing) with the API
// server's real address in place of the kubernetes Service.
func rewriteDaemonSet(t *testing.T, c *cluster.Cluster) *appsv1.DaemonSet {
	return rewriteManifest(t, c, "daemonset.yaml", "secretfs")
}

// rewriteManifest loads deploy/NAME (one DaemonSet) for the harness node;
// container is the one running our image.
func rewriteManifest(t *testing.T, c *cluster.Cluster, name, container string) *appsv1.DaemonSet {
	t.Helper()
	b, err := os.ReadFile("../deploy/" + name)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("/var/lib/kubelet"), []byte(theNode.KubeletRoot))
	// The keeper's socket folder and the providers' (hostPath
	// DirectoryOrCreate), inside the node's folder (no host change).
	for host, dir := range map[string]string{
		"/run/secretfs":                               "run-secretfs",
		"/var/run/secrets-store-csi-providers":        "providers-var-run",
		"/etc/kubernetes/secrets-store-csi-providers": "providers-etc",
	} {
		b = bytes.ReplaceAll(b, []byte(host), []byte(filepath.Join(theNode.Dir, dir)))
	}
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(b, &ds); err != nil {
		t.Fatalf("deploy/%s: %v", name, err)
	}
	u, err := url.Parse(c.Host)
	if err != nil {
		t.Fatal(err)
	}
	spec := &ds.Spec.Template.Spec
	spec.HostNetwork = true
	spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	found := false
	for i := range spec.Containers {
		ct := &spec.Containers[i]
		if ct.Name != container {
			continue
		}
		found = true
		ct.Image, ct.ImagePullPolicy = pluginImage, corev1.PullNever
		if container == "secretfs" {
			ct.Args = append(ct.Args, "--log-level=debug")
		}
		ct.Env = append(ct.Env,
			corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: u.Hostname()},
			corev1.EnvVar{Name: "KUBERNETES_SERVICE_PORT", Value: u.Port()})
	}
	if !found {
		t.Fatalf("deploy/%s has no container named %s", name, container)
	}
	return &ds
}

// runningPod binds a DaemonSet's Pod to the node (there is no scheduler)
// and waits until it runs.
func runningPod(t *testing.T, ctx context.Context, ds *appsv1.DaemonSet, kcm *node.ControllerManager) *corev1.Pod {
	t.Helper()
	sel := metav1.FormatLabelSelector(ds.Spec.Selector)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if _, err := theNode.BindPods(ctx, ds.Namespace, sel); err != nil {
			t.Log(err)
		}
		l, err := kc.CoreV1().Pods(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range l.Items {
			if p.Status.Phase == corev1.PodRunning && podReady(&p) {
				return &l.Items[i]
			}
		}
		if time.Now().After(deadline) {
			dumpDaemonSet(t, ds, l.Items, kcm)
			t.Fatalf("no running Pod of DaemonSet %s/%s after 3 min", ds.Namespace, ds.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func waitCSINode(t *testing.T, want bool, timeout time.Duration) {
	t.Helper()
	if err := waitCSINodeErr(want, timeout); err != nil {
		t.Fatal(err)
	}
}

// waitCSINodeErr waits until the node's CSINode lists the driver (want) or not.
func waitCSINodeErr(want bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		has := false
		cn, err := kc.StorageV1().CSINodes().Get(context.Background(), theNode.Name, metav1.GetOptions{})
		if err == nil {
			for _, d := range cn.Spec.Drivers {
				has = has || d.Name == node.DriverName
			}
		}
		if has == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CSINode %s: driver %s listed=%v after %v, want %v (err %v)", theNode.Name, node.DriverName, has, timeout, want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitNoSecretfsMounts waits until no FUSE mount of secretfs is left under
// the node's kubelet folder.
func waitNoSecretfsMounts(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		var left []string
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && strings.HasPrefix(f[4], theNode.KubeletRoot+"/") && strings.Contains(l, "fuse.secretfs") {
				left = append(left, f[4])
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("secretfs mounts left after %v: %v", timeout, left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// teardownDaemonSet deletes the DaemonSet and its Pods (no garbage
// collector runs) and waits until the plugin has left kubelet.
func teardownDaemonSet(t *testing.T) {
	ctx := context.Background()
	ns := "secretfs"
	for _, name := range []string{"secretfs-csi", "secretfs-keeper"} {
		if err := kc.AppsV1().DaemonSets(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete DaemonSet %s: %v", name, err)
		}
		sel := "app=" + name
		// At once: a keeper that holds mounts (a failed test's) would
		// otherwise wait its grace for a plugin that is gone.
		zero := int64(0)
		kc.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{LabelSelector: sel})
		deadline := time.Now().Add(2 * time.Minute)
		for {
			l, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err == nil && len(l.Items) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("DaemonSet %s Pods still there after 2 min", name)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if err := waitCSINodeErr(false, time.Minute); err != nil {
		t.Error(err)
	}
}

// dumpDaemonSet logs what explains a DaemonSet Pod that does not run.
func dumpDaemonSet(t *testing.T, ds *appsv1.DaemonSet, pods []corev1.Pod, kcm *node.ControllerManager) {
	t.Helper()
	if got, err := kc.AppsV1().DaemonSets(ds.Namespace).Get(context.Background(), ds.Name, metav1.GetOptions{}); err == nil {
		t.Logf("DaemonSet status: %+v", got.Status)
	}
	for i := range pods {
		p := &pods[i]
		t.Logf("Pod %s: phase %s, node %q, conditions %+v, containers %+v\nevents:\n%s", p.Name, p.Status.Phase,
			p.Spec.NodeName, p.Status.Conditions, p.Status.ContainerStatuses, eventText(p))
		if log, err := theNode.LogText(p, "secretfs"); err == nil {
			t.Logf("plugin container log:\n%s", indent(log))
		}
	}
	if b, err := os.ReadFile(kcm.Log()); err == nil {
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("kube-controller-manager log (tail):\n%s", b)
	}
}
