// Package csi is the secretfs CSI plugin: kubelet's `secret` volume served
// as a CSI driver. As in cert-manager's csi-lib, the gRPC layer knows
// nothing of storage: identity.go, controller.go (a stateless minimal
// Controller: a volume is nothing but its attributes) and node.go validate
// requests, server.go serves them on the unix socket with a redacting
// log, and errors.go maps errors to gRPC codes.
//
// A publish, in order: NodePublishVolume checks the volume id, the target
// (Driver.checkPath: package targetpath's guard, then target.go's rules
// of what is ours), the attributes (ParseVolumeAttributes, with the
// namespace rule) and that an inline volume's pod info matches kubelet's
// target (checkPodTarget, podtarget.go); Driver.publish prepares the target and Driver.mount hands
// the volume to package mounted: mounted.Mount for a Secret followed through the
// cache, mounted.MountStatic for nodePublishSecretRef data, mounted.MountPayload
// for a Secrets Store provider's files (provider.go). mounts.go keeps the
// bookkeeping of what this process serves; a republish refreshes the same
// volume.
//
// Across restarts: with a keeper, every volume is registered with a record
// of its request (keep.go), and the next process takes them back with
// Driver.Resume (the steps are written at mounted.Resume) before
// Driver.CleanupStale removes dead mounts an earlier process left
// (stale.go). Nothing is unmounted or removed unless it passes the target
// rules: a path the guard accepts, a mount of our own type and source.
package csi
