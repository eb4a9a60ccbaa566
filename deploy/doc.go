// Package deploy holds the Helm chart of secretfs (chart/secretfs), the
// manifests rendered from it (deploy/*.yaml, for kubectl apply) and the
// examples (no Go code). chart_test.go checks the chart with helm;
// deploy_test.go proves the manifests against a real kube-apiserver v1.37.2.
package deploy
