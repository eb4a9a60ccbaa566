package events

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// The events' reasons, in UpperCamelCase as Kubernetes' own.
const (
	ReasonFailed    = "SecretRefreshFailed"
	ReasonRecovered = "SecretRefreshRecovered"
)

// Component is the events' source (reportingController).
const Component = "secretfs"

// Defaults of Options: the node's token bucket, per event type.
const (
	DefaultBurst = 100
	DefaultQPS   = 1
)

// Options tune a Recorder; only Node is required.
type Options struct {
	Node string // the events' source host (reportingInstance): this node
	// Burst and QPS bound what this node writes, per event type: a
	// token bucket of Burst events refilled at QPS per second. Events
	// beyond it are dropped; the count of one dropped while it repeats
	// is carried by the next written. Defaults DefaultBurst, DefaultQPS.
	Burst int
	QPS   float32
}

// Recorder writes the events of one plugin process, with its own
// identity (the client given to New), in the background: recording never
// blocks a refresh, and events that cannot be queued are dropped.
type Recorder struct {
	b   record.EventBroadcaster
	rec record.EventRecorder
}

// New starts a Recorder writing through client; Shutdown stops it.
func New(client kubernetes.Interface, opts Options) *Recorder {
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.QPS <= 0 {
		opts.QPS = DefaultQPS
	}
	b := record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{
		BurstSize: opts.Burst,
		QPS:       opts.QPS,
		// One bucket for the node (this process) and type, not one per
		// Pod: the bound is the node's, and a storm of Warnings leaves
		// the Normal recoveries their own budget.
		SpamKeyFunc: func(e *corev1.Event) string { return e.Type },
	}))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	rec := b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component, Host: opts.Node})
	return &Recorder{b: b, rec: rec}
}

// Shutdown stops writing; events still queued are dropped.
func (r *Recorder) Shutdown() {
	if r != nil {
		r.b.Shutdown()
	}
}

// Pod is the Pod a volume belongs to, from the volume context's pod info.
type Pod struct{ Namespace, Name, UID string }

// Volume returns the reporter of one mounted volume of pod: name is the
// volume as the Pod names it (or another name of it, such as its id),
// subject what it shows ("Secret NS/NAME", "SecretProviderClass
// NS/NAME"). It is nil when r is nil or the pod info lacks the Pod's
// namespace or name: such a volume records nothing. The uid, which
// kubelet always sends, binds the events to this very Pod (kubectl
// describe selects by it); without it they name the Pod only.
func (r *Recorder) Volume(pod Pod, name, subject string) *Volume {
	if r == nil || pod.Namespace == "" || pod.Name == "" {
		return nil
	}
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: types.UID(pod.UID)}
	return &Volume{r: r, pod: ref, name: name, subject: subject}
}

// Volume records the events of one mounted volume; it is a
// mounted.Reporter.
type Volume struct {
	r       *Recorder
	pod     *corev1.ObjectReference
	name    string
	subject string

	mu      sync.Mutex // keeps the events in the order of the calls
	failing bool       // a Warning was recorded and no good refresh came since
}

// Failed records a Warning for a refresh that failed (the volume keeps
// its last good version): every time, so that repeats count up on one
// Event.
func (v *Volume) Failed(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.failing = true
	v.r.rec.Event(v.pod, corev1.EventTypeWarning, ReasonFailed, failedMessage(v.name, v.subject, err))
}

// Followed records a Normal event if the volume was failing: it follows
// its source again.
func (v *Volume) Followed() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.failing {
		v.failing = false
		v.r.rec.Event(v.pod, corev1.EventTypeNormal, ReasonRecovered, recoveredMessage(v.name, v.subject))
	}
}
