package csi

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/secretfs/secretfs/events"
	"github.com/secretfs/secretfs/sanity/cluster"
)

// TestRefreshFailureEventsOnPod: the kube source, over gRPC as kubelet
// calls it. The Secret under a mounted non-optional volume is deleted:
// the volume keeps its last good version and its Pod gets a Warning
// naming the volume and the Secret, never a value; kubelet's republishes
// that fail again count on that one Event. The Secret comes back: the
// volume follows it and the Pod gets a Normal event. A volume of the same
// Secret without pod info (a PV) records nothing.
func TestRefreshFailureEventsOnPod(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	const ns = "app"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": "first-value"}}
	_, api, kc := kubeSource(t, ns, secret)
	rec := events.New(api, events.Options{Node: "node-1"})
	t.Cleanup(rec.Shutdown)
	p := startPlugin(t, func(cfg *Config, _ *ServerOptions) { cfg.Cache, cfg.PodTokens, cfg.Events = kc, true, rec })

	po := createPod(t, api, ns, "web")
	req, target := p.inline(pod{ns: ns, name: "web", uid: string(po.UID)}, "creds", map[string]string{"secretName": "db"}, nil)
	p.mustPublish(req)
	pv := persistentReq(p, "pv-db", map[string]string{"secretName": "db", "secretNamespace": ns, ephemeralKey: "false"})
	p.mustPublish(pv)

	must(t, api.CoreV1().Secrets(ns).Delete(ctx, "db", metav1.DeleteOptions{}))
	warning := func(evs []corev1.Event) *corev1.Event {
		for i, e := range evs {
			if e.Type == corev1.EventTypeWarning && e.Reason == events.ReasonFailed {
				return &evs[i]
			}
		}
		return nil
	}
	evs := waitPodEvents(t, api, po, "the Warning", func(evs []corev1.Event) bool { return warning(evs) != nil })
	w := warning(evs)
	for _, want := range []string{"volume creds", "Secret app/db", "deleted", "last good version"} {
		if !strings.Contains(w.Message, want) {
			t.Errorf("Warning %q lacks %q", w.Message, want)
		}
	}
	wantFiles(t, target, map[string]string{"password": "first-value"})

	// kubelet republishes (requiresRepublish): each failed refresh
	// counts on the same Event.
	p.mustPublish(req)
	p.mustPublish(req)
	evs = waitPodEvents(t, api, po, "the repeats counted", func(evs []corev1.Event) bool { return warning(evs).Count >= 3 })
	if n := len(evs); n != 1 {
		t.Errorf("%d events after 3 failures of one volume, want 1: %+v", n, evs)
	}

	secret.StringData["password"] = "second-value"
	_, err := api.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{})
	must(t, err)
	waitFor(t, "the new version", func() bool { return files(t, target)["password"] == "second-value" })
	evs = waitPodEvents(t, api, po, "the Normal event", func(evs []corev1.Event) bool {
		for _, e := range evs {
			if e.Type == corev1.EventTypeNormal && e.Reason == events.ReasonRecovered && e.Message == "volume creds: follows Secret app/db again" {
				return true
			}
		}
		return false
	})
	all, err := api.CoreV1().Events("").List(ctx, metav1.ListOptions{})
	must(t, err)
	for _, e := range all.Items {
		if e.Source.Component != events.Component {
			continue // the API server's own
		}
		if e.InvolvedObject.UID != po.UID {
			t.Errorf("event about %s %s/%s: only the Pod with pod info has events", e.InvolvedObject.Kind, e.InvolvedObject.Namespace, e.InvolvedObject.Name)
		}
		if strings.Contains(e.Message, "first-value") || strings.Contains(e.Message, "second-value") {
			t.Errorf("event %q carries a value", e.Message)
		}
	}
	if len(evs) != 2 {
		t.Errorf("%d events on the Pod, want the Warning and the Normal one: %+v", len(evs), evs)
	}
}

// TestProviderAndFileEventsOnPod: a plugin with a file source and a kube
// client (in a cluster: its in-cluster identity) reports on the Pod too.
// A provider volume whose republish fails gets a Warning naming the class
// and the provider's gRPC code, never the provider's own text; the next
// good reply, though equal, a Normal event. A Secret of the file source
// whose manifest goes: a Warning naming it.
func TestProviderAndFileEventsOnPod(t *testing.T) {
	requireFUSE(t)
	c := cluster.Start(t)
	api := c.Client()
	_, err := api.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{})
	must(t, err)
	po := createPod(t, api, "team-a", "web")
	rec := events.New(api, events.Options{Node: "node-1"})
	t.Cleanup(rec.Shutdown)
	p := startProviderPluginOn(t, func(t *testing.T, opts ...pluginOpt) *plugin {
		return startPlugin(t, append(opts, func(cfg *Config, _ *ServerOptions) { cfg.Events = rec })...)
	})
	web := pod{ns: "team-a", name: "web", uid: string(po.UID)}
	req, _ := p.inline(web, "vault", map[string]string{"secretProviderClass": "db", "changeDetection": "Get"}, nil)
	p.mustPublish(req)
	p.writeSecret("team-a", "tls", map[string]string{"tls.key": "key-value"})
	fileReq, _ := p.inline(web, "tls", map[string]string{"secretName": "tls"}, nil)
	p.mustPublish(fileReq)

	p.srv.SetError(status.Error(codes.Unavailable, "vault sealed, token s3cret"))
	p.mustPublish(req) // a republish keeps the last good files and answers OK
	has := func(typ, msg string) func([]corev1.Event) bool {
		return func(evs []corev1.Event) bool {
			for _, e := range evs {
				if e.Type == typ && e.Message == msg {
					return true
				}
			}
			return false
		}
	}
	waitPodEvents(t, api, po, "the provider's Warning", has(corev1.EventTypeWarning,
		"volume vault: SecretProviderClass team-a/db: the refresh failed with code Unavailable; the volume keeps its last good version"))
	p.srv.SetFiles(map[string]string{"db-password": "s3cret"}, "v1")
	p.mustPublish(req)
	waitPodEvents(t, api, po, "the provider's recovery", has(corev1.EventTypeNormal, "volume vault: follows SecretProviderClass team-a/db again"))

	must(t, os.Remove(filepath.Join(p.src, "team-a-tls.yaml")))
	evs := waitPodEvents(t, api, po, "the file Secret's Warning", has(corev1.EventTypeWarning,
		"volume tls: Secret team-a/tls was deleted (or is missing); the volume keeps its last good version"))
	for _, e := range evs {
		if strings.Contains(e.Message, "s3cret") || strings.Contains(e.Message, "sealed") || strings.Contains(e.Message, "key-value") {
			t.Errorf("event %q carries the provider's text or a value", e.Message)
		}
	}
}

// createPod creates Pod ns/name (nothing runs it) for events to be about.
func createPod(t *testing.T, api kubernetes.Interface, ns, name string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	no := false
	_, err := api.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}, AutomountServiceAccountToken: &no}, metav1.CreateOptions{})
	must(t, err)
	po, err := api.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}},
		metav1.CreateOptions{})
	must(t, err)
	return po
}

// persistentReq is a publish of a PersistentVolume (no pod info: the
// CSIDriver's podInfoOnMount is for inline volumes' Pods).
func persistentReq(p *plugin, id string, vc map[string]string) *csi.NodePublishVolumeRequest {
	target := filepath.Join(p.dir, "pods", "pv-pod-uid", "volumes", "kubernetes.io~csi", id, "mount")
	must(p.t, os.MkdirAll(filepath.Dir(target), 0o750))
	return &csi.NodePublishVolumeRequest{
		VolumeId:   id,
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		Readonly:      true,
		VolumeContext: vc,
	}
}

func waitPodEvents(t *testing.T, api kubernetes.Interface, po *corev1.Pod, what string, ok func([]corev1.Event) bool) []corev1.Event {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l, err := api.CoreV1().Events(po.Namespace).List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + po.Name + ",involvedObject.uid=" + string(po.UID)})
		must(t, err)
		if ok(l.Items) {
			return l.Items
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; events of the Pod: %+v", what, l.Items)
		}
	}
}
