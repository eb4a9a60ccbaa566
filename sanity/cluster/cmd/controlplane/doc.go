// Command controlplane starts a detached etcd + kube-apiserver in a folder
// for humans (see ../../start.sh, ../../stop.sh) and prints the kubeconfig.
package main
