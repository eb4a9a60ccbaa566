// Package deploy holds the Kubernetes manifests of secretfs (no Go code);
// this test proves them against a real kube-apiserver v1.37.2.
package deploy
