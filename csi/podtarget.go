package csi

import (
	"errors"
	"fmt"
	"strings"

	"github.com/secretfs/secretfs/targetpath"
)

// This file binds an inline volume's pod info to its target (a Pod
// never reads another namespace's Secret). An inline volume's
// attributes are the Pod author's. With podInfoOnMount kubelet overrides
// the csi.storage.k8s.io/pod.* keys with the truth; without it, it passes
// the author's own, and `pod.namespace: kube-system` would be believed.
// The target path is kubelet's choice, not the author's:
//
//	<root>/pods/<pod uid>/volumes/kubernetes.io~csi/<volume name>/mount
//
// and the pod uid in it is assigned when the Pod is created, after its
// spec was written, so an author cannot write it into the attributes. A
// pod.uid attribute equal to the target's uid therefore came from kubelet,
// and so did the namespace beside it.

// inlineTargetShape describes kubelet's target of an inline volume, for
// messages.
const inlineTargetShape = ".../pods/<pod uid>/volumes/kubernetes.io~csi/<volume name>/mount"

// kubeletTarget returns the pod uid and volume name elements of target
// (absolute, passed by the guard) if it ends in the shape of kubelet's
// CSI volume target. Only the tail is matched: the mount root may be
// kubelet's root folder or its pods folder (the DaemonSet narrows it to
// the latter), and the guard has already kept the target below it.
func kubeletTarget(target string) (uid, volume string, ok bool) {
	e := strings.Split(target, "/")
	if len(e) < 7 {
		return "", "", false
	}
	e = e[len(e)-6:]
	if e[0] != "pods" || e[2] != "volumes" || e[3] != "kubernetes.io~csi" || e[5] != "mount" || e[1] == "" || e[4] == "" {
		return "", "", false
	}
	return e[1], e[4], true
}

// checkPodTarget refuses an inline volume (kubelet's id csi-<64 hex>)
// whose pod info does not come with the target kubelet chose for that
// Pod. Other volumes (our Controller's, PVs) keep the namespace rule of
// attributes.go: their attributes are an admin's.
func checkPodTarget(volumeID string, p targetpath.Path, a *Attributes) error {
	if !isInlineID(volumeID) {
		return nil
	}
	uid, _, ok := kubeletTarget(p.Name)
	if !ok {
		return fmt.Errorf("target_path: an inline volume (id csi-<64 hex>) is published only at kubelet's %s, whose pod uid vouches for the pod info", inlineTargetShape)
	}
	if a.Pod.UID == "" || a.Pod.UID != uid {
		return errors.New("volume attribute " + podUIDKey + ": the pod info does not match the target (is podInfoOnMount set on the CSIDriver?)")
	}
	return nil
}
