// Package kube reads Secrets from the Kubernetes API, the way kubelet's
// secret volume does: a get for a one-off read, and for Watch one
// list+watch per Secret restricted by the field selector metadata.name=NAME.
//
// Per-Secret rather than per-namespace watches (TestRequestCount): a
// namespace informer costs the apiserver fewer requests (1 streaming
// watch-list against 100 lists + 100 watches for 100 Secrets), but the
// apiserver authorizes a list/watch with the name selector as a request for
// that one Secret, so a pod token whose Role lists resourceNames can watch
// its own Secret, while a namespace-wide watch needs list/watch on every
// Secret of the namespace, and would pull every one of them, used or not,
// into our memory. Kubelet made the same choice.
package kube
