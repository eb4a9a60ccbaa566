package events

import (
	"context"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/sanity/cluster"
)

// These tests write through a real kube-apiserver (sanity/cluster) with
// the plugin's identity as the chart makes it (deploy/rbac.yaml).

// pluginClient applies the chart's RBAC (deploy/rbac.yaml, rendered with
// the default kube source) and returns a client of the plugin's service
// account, once the authorizer lets it create and patch events.
func pluginClient(t *testing.T, c *cluster.Cluster) kubernetes.Interface {
	t.Helper()
	tok, err := c.ApplyRBAC(context.Background(), "../deploy/rbac.yaml", authorizationv1.ResourceAttributes{Namespace: "app", Resource: "events"}, "create", "patch")
	must(t, err)
	client, err := c.ClientFor(tok)
	must(t, err)
	return client
}

// newPod creates a Pod in namespace app (nothing runs it: there are no
// nodes) for events to be about.
func newPod(t *testing.T, api kubernetes.Interface, name string) Pod {
	t.Helper()
	ctx := context.Background()
	api.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{})
	no := false
	api.CoreV1().ServiceAccounts("app").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}, AutomountServiceAccountToken: &no}, metav1.CreateOptions{})
	po, err := api.CoreV1().Pods("app").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}},
		metav1.CreateOptions{})
	must(t, err)
	return Pod{Namespace: "app", Name: name, UID: string(po.UID)}
}

// podEvents lists the events about pod, as `kubectl describe pod` finds
// them.
func podEvents(t *testing.T, api kubernetes.Interface, pod Pod) []corev1.Event {
	t.Helper()
	l, err := api.CoreV1().Events(pod.Namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + pod.Name + ",involvedObject.uid=" + pod.UID})
	must(t, err)
	return l.Items
}

func waitEvents(t *testing.T, what string, api kubernetes.Interface, pod Pod, ok func([]corev1.Event) bool) []corev1.Event {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		evs := podEvents(t, api, pod)
		if ok(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; events: %+v", what, evs)
		}
	}
}

func ofType(evs []corev1.Event, typ string) []corev1.Event {
	var out []corev1.Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestFailuresAggregatedRecoveryOnce: with the chart's RBAC, repeated
// failures of one volume are one Warning Event whose count grows, a
// second volume of the Pod has its own, a recovery is one Normal event
// however often the volume is then found good, and a volume without pod
// info records nothing.
func TestFailuresAggregatedRecoveryOnce(t *testing.T) {
	c := cluster.Start(t)
	api := c.Client()
	r := New(pluginClient(t, c), Options{Node: "node-1"})
	t.Cleanup(r.Shutdown)
	pod := newPod(t, api, "web")
	for _, p := range []Pod{{Namespace: "app", UID: pod.UID}, {Name: "web", UID: pod.UID}, {}} {
		if v := r.Volume(p, "creds", "Secret app/db"); v != nil {
			t.Fatalf("a volume with pod info %+v got a reporter", p)
		}
	}
	creds := r.Volume(pod, "creds", "Secret app/db")
	other := r.Volume(pod, "tls", "Secret app/tls")
	deleted := &projection.NotFoundError{Ref: "app/db"}
	creds.Followed() // good refreshes before any failure: nothing to say
	for range 3 {
		creds.Failed(deleted)
	}
	other.Failed(&projection.NotFoundError{Ref: "app/tls"})
	// The recorder writes in the order of the calls, but in the
	// background: wait for the last one (tls) as well as the count.
	evs := waitEvents(t, "one Warning counted 3 for creds, and tls's", api, pod, func(evs []corev1.Event) bool {
		var creds3, tls bool
		for _, e := range evs {
			creds3 = creds3 || strings.Contains(e.Message, "volume creds:") && e.Count == 3
			tls = tls || strings.Contains(e.Message, "volume tls:")
		}
		return creds3 && tls
	})
	warnings := ofType(evs, corev1.EventTypeWarning)
	if len(warnings) != 2 || len(evs) != 2 {
		t.Fatalf("events %+v: want two Warnings, one per volume", evs)
	}
	for _, e := range warnings {
		if e.Reason != ReasonFailed || e.Source.Component != Component || e.Source.Host != "node-1" || string(e.InvolvedObject.UID) != pod.UID {
			t.Errorf("Warning %+v: want reason %s from %s on node-1 about the Pod", e, ReasonFailed, Component)
		}
	}
	creds.Followed()
	creds.Followed()
	creds.Failed(deleted)
	creds.Followed()
	evs = waitEvents(t, "the second recovery", api, pod, func(evs []corev1.Event) bool {
		n := ofType(evs, corev1.EventTypeNormal)
		return len(n) == 1 && n[0].Count == 2
	})
	n := ofType(evs, corev1.EventTypeNormal)[0]
	if n.Reason != ReasonRecovered || n.Message != "volume creds: follows Secret app/db again" {
		t.Errorf("Normal event %q %q", n.Reason, n.Message)
	}
	if w := ofType(evs, corev1.EventTypeWarning); len(w) != 2 {
		t.Errorf("%d Warnings after a failure between recoveries, want the same 2 (counted)", len(w))
	}
}

// TestNodeBound: the node's Warnings share one token bucket, whatever
// their Pods; the recoveries have their own.
func TestNodeBound(t *testing.T) {
	c := cluster.Start(t)
	api := c.Client()
	r := New(pluginClient(t, c), Options{Node: "node-1", Burst: 2, QPS: 0.001})
	t.Cleanup(r.Shutdown)
	var vols []*Volume
	var pods []Pod
	for _, name := range []string{"a", "b", "c", "d"} {
		pod := newPod(t, api, name)
		pods = append(pods, pod)
		v := r.Volume(pod, "creds", "Secret app/db")
		v.Failed(&projection.NotFoundError{Ref: "app/db"})
		vols = append(vols, v)
	}
	// Events are written in order: once the recovery of d is in, every
	// Warning before it was written or dropped.
	vols[3].Followed()
	waitEvents(t, "the recovery", api, pods[3], func(evs []corev1.Event) bool { return len(ofType(evs, corev1.EventTypeNormal)) == 1 })
	written := 0
	for _, pod := range pods {
		written += len(ofType(podEvents(t, api, pod), corev1.EventTypeWarning))
	}
	if written != 2 {
		t.Errorf("%d Warnings written for 4 Pods with a node burst of 2", written)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
