// Command node runs a throwaway single-node Kubernetes (etcd, kube-apiserver,
// containerd, kubelet) with the secretfs CSI plugin registered, until
// SIGINT/SIGTERM, then stops everything and restores the host:
//
//	go run ./sanity/node/cmd/node [-plugin bin/secretfs] [-keep]
//	export KUBECONFIG=<printed path>
//	/var/cache/secretfs/k8s-v1.37.2/bin/kubectl get nodes
//
// Pods need spec.nodeName: secretfs-node, hostNetwork: true and the image
// secretfs.local/busybox:e2e with imagePullPolicy Never (no scheduler, no
// network, no registry). Pod logs are files under <node dir>/pod-logs.
package main
