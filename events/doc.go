// Package events reports on a Pod what happens to its mounted volumes, as
// kubelet and the Secrets Store CSI Driver do: a Warning when a refresh
// fails and the volume keeps its last good version, a Normal event when
// it follows its source again. It is the only package that knows
// client-go's event machinery; package mounted calls it through
// mounted.Reporter, and csi makes one Volume per published volume from
// the volume context's pod info (no pod info: no events).
//
// The events (core/v1, what `kubectl describe pod` shows):
//
//	Warning  SecretRefreshFailed     volume NAME: Secret NS/NAME was deleted ...; the volume keeps its last good version
//	Normal   SecretRefreshRecovered  volume NAME: follows Secret NS/NAME again
//
// A message names the volume, the Secret or the SecretProviderClass and
// a category of the error (missing, missing key, invalid, refused,
// unreachable, provider code), never an error's own text, which may
// quote input, and never a value.
//
// One Event per volume and reason, not one per retry: a volume records a
// Warning at each failed refresh it hears of (the cache tells a new error
// once, not each retry; each failed republish), and client-go's correlator
// folds identical ones (same Pod, reason and message, and the message
// names the volume) into one Event whose count grows; the Normal one is
// recorded once per recovery (Volume.Followed after a failure). The correlator's spam filter
// is one token bucket per node and event type (Options.Burst, QPS): a node
// with thousands of failing volumes cannot flood the API server, and the
// Warnings cannot starve the recoveries.
package events
