// Package child starts and stops the daemons the test harnesses run
// (etcd, kube-apiserver, containerd, kubelet, the plugin): each logs to a
// file, dies with the test process unless detached, and is only ever
// signalled by its own PID.
package child
