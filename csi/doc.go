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
// the volume to the Config's VolumeMaker (maker.go; package mounted by
// default): Mount for a Secret followed through the cache, MountStatic for
// nodePublishSecretRef data, MountPayload for a Secrets Store provider's
// files (provider.go); a volume of several sources (attribute `sources`,
// parsed in sources.go) is a Mount with mounted.Config.Sources, whose
// secretProviderClass sources join their provider entries in
// sources_mount.go. mounts.go keeps the bookkeeping of what this process
// serves; a republish refreshes the same volume.
//
// The rules ask the kernel only through two small interfaces in Config,
// as csi-lib's node server takes a mount.Interface and a storage
// interface: a Mounter (mounter.go: what is mounted at a target, whether
// its server is gone, the unmount of a dead mount of ours) and a
// VolumeMaker. Tests give fakes of both (fake_test.go), so the rules run
// as any user; the tests that mount FUSE need root.
//
// Across restarts: with a keeper, every volume is registered with a record
// of its request (keep.go), and the next process takes them back with
// Driver.Resume (the steps are written at mounted.Resume) before
// Driver.CleanupStale removes dead mounts an earlier process left
// (stale.go). Nothing is unmounted or removed unless it passes the target
// rules: a path the guard accepts, a mount of our own type and source.
package csi
