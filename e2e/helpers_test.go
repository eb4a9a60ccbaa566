package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/secretfs/secretfs/sanity/node"
)

// inventory prints what a container sees of each volume in $@: the root,
// then every entry (find, sorted) with lstat mode, owner and group, links
// with their target and what they resolve to, files with their content
// (base64, so every byte counts). Then the plain commands a user would run:
// ls -la, stat -c '%a %g %U' and cat of every top-level name.
const inventory = `
inv() (
d=$1
echo "ROOT $(stat -c '%A %a %U %g' "$d")"
cd "$d" || exit 1
find . -mindepth 1 | sort | while read -r f; do
  l=$(stat -c '%A %a %U %g' "$f")
  if [ -L "$f" ]; then
    echo "LINK $f -> $(readlink "$f") [$l] resolves [$(stat -L -c '%A %a %U %g' "$f" 2>&1)]"
  elif [ -d "$f" ]; then
    echo "DIR  $f [$l]"
  else
    echo "FILE $f [$l] $(base64 "$f" 2>&1 | tr -d '\n')"
  fi
done
echo "--- ls -la"
ls -la "$d" | awk 'NR>1 {o=$1" "$3" "$4; for (i=9; i<=NF; i++) o=o" "$i; print o}'
echo "--- stat -L -c '%a %g %U' and cat"
for f in "$d"/* "$d"/.[!.]*; do
  [ -e "$f" ] || continue
  echo "$f: $(stat -L -c '%a %g %U' "$f") [$(cat "$f" 2>&1)]"
done
)
for d in "$@"; do echo "=== $d"; inv "$d"; done
`

// tsName is kubelet's (and secretfs's) version folder name.
var tsName = regexp.MustCompile(`\.\.[0-9]{4}_[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}\.[0-9]+`)

// normalise replaces ..<timestamp> names by ..TS.
func normalise(s string) string { return tsName.ReplaceAllString(s, "..TS") }

var seq atomic.Int64

// newNamespace creates a namespace for one case with its default
// ServiceAccount, allowed (Role + RoleBinding) to get, list and watch the
// namespace's Secrets: the plugin reads with the pod's own token.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns := fmt.Sprintf("%s-%d", prefix, seq.Add(1))
	if err := theNode.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	grantSecrets(t, ns, "default")
	return ns
}

func grantSecrets(t *testing.T, ns, sa string) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secret-reader-" + sa},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}}}}
	if _, err := kc.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "secret-reader-" + sa},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}}
	if _, err := kc.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func createSecret(t *testing.T, ns, name string, data map[string]string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	out, err := kc.CoreV1().Secrets(ns).Create(context.Background(), s, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func updateSecret(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	s, err := kc.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	if _, err := kc.CoreV1().Secrets(ns).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// vol is one secret volume of a test Pod, described as kubelet's secret
// volume source; csiVolume turns it into secretfs volume attributes.
type vol struct {
	name, mountPath string
	src             corev1.SecretVolumeSource
}

// csiAttributes maps a secret volume source to secretfs's volume attributes.
func csiAttributes(s corev1.SecretVolumeSource) map[string]string {
	a := map[string]string{"secretName": s.SecretName}
	if len(s.Items) > 0 {
		b, _ := json.Marshal(s.Items) // mode as a JSON number (decimal)
		a["items"] = string(b)
	}
	if s.DefaultMode != nil {
		a["defaultMode"] = fmt.Sprintf("%04o", *s.DefaultMode)
	}
	if s.Optional != nil {
		a["optional"] = fmt.Sprint(*s.Optional)
	}
	return a
}

type kind string

const (
	kindCSI     kind = "csi"
	kindBuiltin kind = "builtin"
)

// podSpec describes a test Pod; makePod builds it with secretfs CSI inline
// volumes (kindCSI) or kubelet's own secret volumes (kindBuiltin).
type podSpec struct {
	ns, name string
	vols     []vol
	script   string   // sh -c script; $1.. are args
	args     []string // script arguments
	sec      *corev1.PodSecurityContext
	sa       string // service account; default "default"
}

func makePod(p podSpec, k kind) *corev1.Pod {
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	ro := true
	for _, v := range p.vols {
		src := v.src
		vs := corev1.VolumeSource{}
		if k == kindCSI {
			vs.CSI = &corev1.CSIVolumeSource{Driver: node.DriverName, ReadOnly: &ro, VolumeAttributes: csiAttributes(src)}
		} else {
			vs.Secret = &src
		}
		volumes = append(volumes, corev1.Volume{Name: v.name, VolumeSource: vs})
		mounts = append(mounts, corev1.VolumeMount{Name: v.name, MountPath: v.mountPath, ReadOnly: true})
	}
	zero := int64(0)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name + "-" + string(k), Namespace: p.ns,
			Labels: map[string]string{"e2e-kind": string(k)}},
		Spec: corev1.PodSpec{
			NodeName:                      theNode.Name,
			HostNetwork:                   true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ServiceAccountName:            p.sa,
			SecurityContext:               p.sec,
			TerminationGracePeriodSeconds: &zero,
			Volumes:                       volumes,
			Containers: []corev1.Container{{
				Name: "c", Image: node.BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command:      append([]string{"sh", "-c", p.script, "sh"}, p.args...),
				VolumeMounts: mounts,
			}},
		},
	}
}

// createPod creates pod and deletes it at the end of the test.
func createPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	out, err := kc.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		kc.CoreV1().Pods(pod.Namespace).Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	return out
}

// waitPod waits until the pod reaches one of phases and returns it.
func waitPod(t *testing.T, pod *corev1.Pod, timeout time.Duration, phases ...corev1.PodPhase) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, err := kc.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ph := range phases {
			if p.Status.Phase == ph {
				return p
			}
		}
		if p.Status.Phase == corev1.PodFailed || time.Now().After(deadline) {
			log, _ := theNode.LogText(p, "c")
			t.Fatalf("pod %s/%s is %s, want %v; events:\n%s\nlog:\n%s", p.Namespace, p.Name, p.Status.Phase, phases,
				eventText(p), log)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// events of a pod, oldest first.
func events(pod *corev1.Pod) []corev1.Event {
	sel := fields.Set{"involvedObject.name": pod.Name, "involvedObject.namespace": pod.Namespace}.AsSelector().String()
	l, err := kc.CoreV1().Events(pod.Namespace).List(context.Background(), metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil
	}
	return l.Items
}

func eventText(pod *corev1.Pod) string {
	var sb strings.Builder
	for _, e := range events(pod) {
		fmt.Fprintf(&sb, "  %s %s: %s\n", e.Type, e.Reason, e.Message)
	}
	return sb.String()
}

// runPair runs the Pod with secretfs volumes and the same Pod with
// kubelet's secret volumes side by side, waits for both to finish and
// returns their logs (normalised). It fails the test unless both logs are
// equal: the differential check.
func runPair(t *testing.T, p podSpec) (csiLog, builtinLog string) {
	t.Helper()
	return pairLogs(t, createPod(t, makePod(p, kindCSI)), createPod(t, makePod(p, kindBuiltin)))
}

// pairLogs waits for the Pod with secretfs volumes (cp) and its twin
// with kubelet's volumes (bp) to finish and returns their logs
// (normalised), failing the test unless they are equal.
func pairLogs(t *testing.T, cp, bp *corev1.Pod) (csiLog, builtinLog string) {
	t.Helper()
	cp = waitPod(t, cp, 2*time.Minute, corev1.PodSucceeded)
	bp = waitPod(t, bp, 2*time.Minute, corev1.PodSucceeded)
	var err error
	if csiLog, err = theNode.LogText(cp, "c"); err != nil {
		t.Fatal(err)
	}
	if builtinLog, err = theNode.LogText(bp, "c"); err != nil {
		t.Fatal(err)
	}
	csiLog, builtinLog = normalise(csiLog), normalise(builtinLog)
	t.Logf("secretfs volume:\n%s", indent(csiLog))
	if csiLog != builtinLog {
		t.Errorf("DIFFERENTIAL: secretfs and kubelet's volume differ\n%s", diffLines(csiLog, builtinLog))
	} else {
		t.Logf("DIFFERENTIAL: same as kubelet's volume (%d lines)", strings.Count(csiLog, "\n"))
	}
	return csiLog, builtinLog
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// diffLines is a small line diff: lines only in a (secretfs) or only in b.
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	inB := map[string]int{}
	for _, l := range bl {
		inB[l]++
	}
	inA := map[string]int{}
	for _, l := range al {
		inA[l]++
	}
	var sb strings.Builder
	for _, l := range al {
		if inB[l] == 0 {
			fmt.Fprintf(&sb, "  secretfs only: %s\n", l)
		}
	}
	for _, l := range bl {
		if inA[l] == 0 {
			fmt.Fprintf(&sb, "  kubelet only:  %s\n", l)
		}
	}
	if sb.Len() == 0 {
		sb.WriteString("  (same lines, different order)\n" + indent(a) + "\n  ---\n" + indent(b))
	}
	return sb.String()
}

// wantLines fails unless log contains every line.
func wantLines(t *testing.T, log string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains("\n"+log, "\n"+l+"\n") {
			t.Errorf("missing line %q in:\n%s", l, indent(log))
		}
	}
}

func ptr[T any](v T) *T { return &v }

// waitEvent waits for an event of pod whose message contains every part.
func waitEvent(t *testing.T, pod *corev1.Pod, timeout time.Duration, parts ...string) corev1.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range events(pod) {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(e.Message, p)
			}
			if ok {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event of %s/%s containing %q; events:\n%s", pod.Namespace, pod.Name, parts, eventText(pod))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
