// Package provider serves volumes whose files come from a Secrets Store
// CSI Driver provider (Vault, AWS, Azure, GCP …): processes on the node
// that listen on DIR/NAME.sock and speak the driver's provider API
// v1alpha1 (service CSIDriverProvider: Version, Mount). secretfs asks them
// exactly as the driver does, so a provider built for it works unchanged.
//
// The life of a provider volume:
//
//  1. Join: the volume's Request (pod namespace, SecretProviderClass,
//     volume context, nodePublishSecretRef secrets, target, default mode)
//     is keyed by what the provider can see, minus the per-Pod parts (pod
//     name and uid, target, tokens). Volumes with one key share an entry.
//  2. refresh: the entry reads the class from the pod's namespace
//     (backend.ClassReader), builds the driver's MountRequest from its
//     most recently published volume (newRequest), calls Mount on the
//     provider's connection (Client.Mount: Version once per connection,
//     bounded reply size, a timeout) and checks the reply with the item
//     path and mode rules of secret volumes (checkReply).
//  3. The files go to every volume of the entry (each applies its own
//     fsGroup) unless they equal the current ones: then only the object
//     versions are remembered, for the next current_object_version.
//  4. Cache entries refresh on their own timer (the volume's ttl, default
//     2m) and at every republish; Get entries at every publish and
//     republish. A failed refresh keeps the last good files and is
//     counted; every member hears each call's outcome (Join's
//     onRefresh), so its volume can report a failure and the recovery.
//  5. The last volume to leave stops the timer and wipes the files.
//
// Errors carry their gRPC code (GRPCStatus: InvalidArgument for a bad
// provider name, NotFound or PermissionDenied for the class, Unavailable
// or DeadlineExceeded for a provider that does not answer,
// FailedPrecondition for a reply that breaks the file rules), so the CSI
// layer passes them on as they are.
package provider
