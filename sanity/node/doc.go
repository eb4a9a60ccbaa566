// Package node adds a real Kubernetes node to the control plane of package
// cluster: containerd (started by hand, its own root, state and socket) and
// kubelet v1.37.2, so tests can run real Pods. There is no scheduler and no
// controller-manager: Pods carry spec.nodeName, use hostNetwork, and each
// namespace's "default" ServiceAccount is created by EnsureNamespace.
//
// What a Debian VM needs: Debian's containerd, runc,
// containernetworking-plugins, umoci, skopeo and busybox-static (installed
// by EnsurePackages through apt); containerd's CRI with
// restrict_oom_score_adj (the VM drops CAP_SYS_RESOURCE); a loopback-only CNI
// conflist written before containerd starts (else the node stays NotReady);
// images built locally from busybox-static (images.sh), /bin/sleep infinity
// as the pause image; kubelet with failCgroupV1 false, cgroupDriver cgroupfs,
// failSwapOn false, its root, certificate and pod-log folders in the node's
// temp folder, and a PATH without /usr/sbin so it leaves iptables alone.
//
// Host state kubelet changes is put back by Stop: the sysctls it sets, the
// /var/log/containers links and /var/lib/kubelet/device-plugins it creates,
// the kubepods cgroups. Every process is stopped by its PID; every mount under
// the node's folder is detached.
package node
