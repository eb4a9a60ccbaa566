// Package keeper keeps FUSE mounts alive across restarts of the process
// that serves them. The keeper is a tiny long-lived process holding, for
// each mount, a dup of its /dev/fuse descriptor and a record of what it
// shows; a restarted server takes both back and serves the same mount on.
// It holds no logic that would need frequent upgrades: it stores, lists and
// forgets opaque records, nothing more.
//
// The takeover, step by step, is written once at mounted.Resume. The
// keeper's part in it: a server dials it (Dial), and each end checks with
// SO_PEERCRED that the other runs as its own uid before Hello and Welcome
// settle the protocol version and the connection's record kind (csi,
// mount). Client.Register hands it a mount's descriptor and record
// (through fusefs.FS.Attach); every version is Put before the kernel can
// see it and Dropped once gone, and a Register counts the Puts that follow
// it, so a record is swapped in only once complete. After the server
// dies the held descriptor keeps the mount alive and its requests waiting;
// the next server of the same kind lists the records (Client.List) and
// serves each mount on. A mount whose connection the kernel ended is
// forgotten (reap).
//
// The wire format and its compatibility rule are in package keeper/wire.
package keeper
