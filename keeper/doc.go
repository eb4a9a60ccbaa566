// Package keeper keeps FUSE mounts alive across restarts of the process
// that serves them. The keeper is a tiny long-lived process holding, for
// each mount, a dup of its /dev/fuse descriptor and a record of what it
// shows; a restarted server takes both back and serves the same mount on.
// It holds no logic that would need frequent upgrades: it stores, lists and
// forgets opaque records, nothing more.
//
// A takeover, from start to end:
//  1. A server dials the keeper (Dial): each end checks with SO_PEERCRED
//     that the other runs as its own uid, then Hello and Welcome settle
//     the protocol version and the connection's record kind (csi, mount).
//  2. It registers each mount (Client.Register, through fusefs.FS.Attach)
//     with a dup of its descriptor, then keeps the record current: every
//     version is Put before the kernel can see it, Dropped once gone.
//  3. The server dies; the keeper still holds the descriptor, so the mount
//     lives on and its requests wait.
//  4. The next server lists the records of its kind (Client.List), rebuilds
//     each filesystem from its snapshot (fusefs.Restore) and serves it on
//     the handed-over descriptor.
//
// The wire format and its compatibility rule are in package keeper/wire.
package keeper
