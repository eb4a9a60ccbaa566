package provider

import (
	"crypto/sha256"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"time"

	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/secretfs/secretfs/backend"
)

// Strategy is how a provider volume follows changes: Cache asks
// on a timer and at every republish, Get at every publish and republish.
type Strategy string

const (
	StrategyCache Strategy = "Cache"
	StrategyGet   Strategy = "Get"
)

// DefaultTTL is the Cache strategy's period when the volume sets none.
const DefaultTTL = 2 * time.Minute

// kubelet's pod info keys that differ between Pods sharing one entry.
const (
	podNameKey = "csi.storage.k8s.io/pod.name"
	podUIDKey  = "csi.storage.k8s.io/pod.uid"
	tokensKey  = "csi.storage.k8s.io/serviceAccount.tokens"
)

// Request is what one published volume asks of its provider.
type Request struct {
	Namespace      string // the pod's: the class is read from here only
	Class          string // attribute secretProviderClass
	ServiceAccount string
	// Context is volume_context as kubelet sent it (pod keys, tokens);
	// Secrets the publish request's secrets as sent (nodePublishSecretRef,
	// or the tokens with serviceAccountTokenInSecrets).
	Context map[string]string
	Secrets map[string]string
	Target  string
	// DefaultMode is sent as the permission and used for files whose
	// mode is 0.
	DefaultMode int32
	Strategy    Strategy
	TTL         time.Duration
}

// key is what volumes sharing one entry have in common: everything the
// provider sees except the pod's name and uid, the target and the tokens.
// It is hashed, since it holds the secrets' contents.
func (r *Request) key() [sha256.Size]byte {
	ctx := maps.Clone(r.Context)
	delete(ctx, podNameKey)
	delete(ctx, podUIDKey)
	delete(ctx, tokensKey)
	sec := maps.Clone(r.Secrets)
	delete(sec, tokensKey)
	js, _ := json.Marshal(struct {
		Namespace, Class, ServiceAccount string
		Context, Secrets                 map[string]string
		DefaultMode                      int32
		Strategy                         Strategy
		TTL                              time.Duration
	}{r.Namespace, r.Class, r.ServiceAccount, ctx, sec, r.DefaultMode, r.Strategy, r.TTL})
	return sha256.Sum256(js)
}

// newRequest builds the MountRequest as the Secrets Store CSI Driver's
// NodePublishVolume does:
// attributes = the class's parameters overlaid with the volume context,
// plus the tokens when kubelet put them in secrets; secrets = the
// request's secrets as JSON ("{}" if none); permission = the default
// mode marshalled as an os.FileMode ("420" for 0644); and the object
// versions of the previous reply.
func newRequest(r *Request, class *backend.ProviderClass, versions []*v1alpha1.ObjectVersion) *v1alpha1.MountRequest {
	attrs := maps.Clone(class.Parameters)
	if attrs == nil {
		attrs = map[string]string{}
	}
	maps.Copy(attrs, r.Context)
	if t, ok := r.Secrets[tokensKey]; ok && t != "" {
		attrs[tokensKey] = t
	}
	secrets := r.Secrets
	if secrets == nil {
		secrets = map[string]string{}
	}
	a, _ := json.Marshal(attrs) // maps of strings always marshal
	s, _ := json.Marshal(secrets)
	p, _ := json.Marshal(os.FileMode(r.DefaultMode))
	return &v1alpha1.MountRequest{
		Attributes:           string(a),
		Secrets:              string(s),
		TargetPath:           r.Target,
		Permission:           string(p),
		CurrentObjectVersion: slices.Clone(versions),
	}
}
