// Package wire is the keeper's protocol: how a server (`secretfs csi` or
// `secretfs mount`) and the keeper talk over the keeper's unix socket, and
// how a mount's record is laid out in bytes. It is written down here, field
// by field, because two releases must understand each other: the keeper is
// upgraded far less often than its servers, and a rollback puts an older
// server in front of records a newer one wrote.
//
// # Frames
//
// The socket carries frames, each a 5-byte header and a body:
//
//	offset 0  uint32, big endian: length of the body in bytes
//	offset 4  uint8: the message type (Op)
//	offset 5  body: protocol buffer wire format fields (see below)
//
// A frame may carry one /dev/fuse descriptor (SCM_RIGHTS), sent with the
// header bytes. A body is at most MaxControl (64 KiB) bytes, except for the
// record messages Register, Put, Entry and Version, which carry a volume's
// files and may take up to MaxRecord (16 MiB): a Secret is at most 1 MiB,
// a provider reply 4 MiB by default, and a version travels in a message of
// its own. A larger header is refused before any of the body is read.
//
// Bodies use the protocol buffer encoding (google.golang.org/protobuf's
// protowire): each field is a tag (field number, wire type) and a value;
// varint for numbers, length-delimited for strings, bytes and nested
// messages. Field numbers are shared by every message type:
//
//	 1 id       bytes    the mount's id (its mount point)
//	 2 meta     bytes    the server's own record of the mount (opaque)
//	 3 head     bytes    the snapshot head blob (see Blobs)
//	 4 gen      varint   a version's generation number
//	 5 blob     bytes    a version blob (see Blobs)
//	 6 notice   message  one kernel notification: 1 op (varint: 1 delete,
//	                     2 entry, 3 inode), 2 parent (varint), 3 child
//	                     (varint), 4 name (bytes)
//	 7 kind     bytes    the record kind of a connection: "csi" or "mount"
//	 8 versions varint   a protocol version spoken (repeated, one per field)
//	 9 version  varint   the protocol version chosen
//	10 software bytes    the sender's release (informational)
//	11 error    bytes    why a request failed
//	12 code     varint   error code: 1 refused (do not retry this keeper),
//	                     2 unsupported version, 3 request failed
//	13 count    varint   in Register: how many Puts complete it
//	15 magic    bytes    "secretfs-keeper", in Hello and Welcome
//
// # Messages (protocol version 1)
//
//	 1 Hello    client → keeper, first: magic, versions, kind, software
//	 2 Welcome  keeper → client: magic, version, versions, software
//	 3 Error    keeper → client: error, code. A refusal (code 1 or 2)
//	            answers a Hello and then the keeper closes the connection
//	 4 Register + descriptor: id, meta, head, count. Holds a mount,
//	            replacing any record of that kind and id once the count Puts
//	            that follow have come in (its versions): until then the old
//	            record stays, and a connection lost before the last Put
//	            leaves it in place. Without count it replaces it at once
//	 5 Put      id, gen, blob, optional head: adds (or replaces) version
//	            gen; a head, when present, replaces the record's head
//	 6 Drop     id, gen: version gen is gone; its bytes are wiped
//	 7 Forget   id: the mount is gone; its record is wiped
//	 8 List     (no fields): every record of the connection's kind
//	 9 Entry    + descriptor: id, meta, head; its Versions follow
//	10 Version  gen, blob: one version of the Entry before it
//	11 End      ends a List reply
//	12 Ack      a request done
//	13 Notify   id, notices: written to the mount's descriptor, in order,
//	            by the keeper (a server must never wait on its own mount)
//
// Register, Put, Drop, Forget and Notify are answered by Ack or Error;
// List by Entry/Version frames and End, or Error.
//
// # Blobs
//
// The keeper stores meta, head and version blobs as opaque bytes and reads
// only id, gen and kind; only servers decode them (Head, DecodeVersion).
//
//	head:    1 start (varint, Unix nanoseconds), 2 current (varint gen),
//	         3 link (bytes, repeated: every top-level name ever linked),
//	         4 subpath (varint, 1: the volume has stable nodes, whose IDs
//	         a server must rebuild; see fusefs.Options.SubPathUpdates)
//	version: 1 gen (varint), 2 name (bytes: the ..<timestamp> folder),
//	         3 created (varint, Unix nanoseconds), 4 file (message,
//	         repeated: 1 path (bytes), 2 mode (varint), 3 data (bytes)),
//	         5 changed (message, repeated: 1 path (bytes), 2 when the
//	         path last changed as a stable node shows it (varint, Unix
//	         nanoseconds); absent: created), 6 source (message, repeated,
//	         only for a volume of several sources: 1 path (bytes), 2 the
//	         index of the source that gave the file (varint); see
//	         projection.Payload.Sources)
//
// # Compatibility rule
//
// 1. The frame header, Hello, Welcome and Error never change, so any two
// releases can tell which versions the other speaks.
// 2. At connect the client sends the versions it speaks; the keeper picks
// the highest both speak, or refuses (code 2, naming both lists) and
// closes the connection: the records it holds stay held.
// 3. A release speaks its own protocol version and the previous one's, so
// releases N and N+1 always share one; a version is dropped only by a
// release whose predecessor already spoke its successor.
// 4. Within a version, and in blobs always, fields are only added, under
// new numbers; a number is never reused nor its meaning changed; decoders
// skip fields they do not know. A server reads records written by the
// release before or after it because the fields it needs are still
// written. A change old readers would misread needs a new field number.
// 5. A keeper never interprets blobs, so an old keeper holds a newer
// server's records unchanged, and the reverse.
//
// Version 1 is the first versioned format. The releases before it sent a
// gob of internal structures with no version: such a peer's first frame is
// not a Hello (and its own decoder rejects ours), so the two refuse each
// other and the mounts fall back to being mounted afresh.
//
// # Protocol version 2: journals
//
// Version 2 adds, under new numbers only:
//
//	16 journal  varint   1: the record's versions are in a journal memfd
//	14 Journal  + descriptor: id. The memfd (a Ledger) of the Register
//	            (journal 1, no head, no count) before it, which completes
//	            it; in a List reply, of the Entry (journal 1) before it
//	15 Stopping (no fields): the server is terminating; its records need
//	            another holder before the keeper may exit
//
// A version 2 server registers a mount as Register (journal 1) with the
// /dev/fuse descriptor, then Journal with the memfd, and writes every
// version into the ledger itself: it never Puts or Drops. The keeper holds
// the memfd without mapping it. To a version 1 server it lists such a
// record as Entry and Version frames read from the ledger (ReadLedger: the
// framing below, never the blobs), so releases N and N+1 still hand over
// in both directions.
//
// # Ledgers
//
// A Ledger is a sealed memfd (F_SEAL_SHRINK) that the serving process maps
// (mlocked as touched, never in a core dump) and writes the mount's whole
// snapshot into before the kernel can see a node of a new version. That
// is the write-ahead rule of the takeover: whatever the kernel may ask
// for, the newest complete snapshot in the ledger can rebuild (same
// generations, same node IDs), and it is never older than what the
// kernel has seen. Layout, little endian:
//
//	page 0   "sfsledg1", then two slot entries of 32 bytes:
//	         seq (8), offset (8), length (8), CRC-32C of the data (4),
//	         CRC-32C of the 28 bytes before (4)
//	data     at a slot's offset, its parts one after the other:
//	         gen (8, 0 for the head), length (4), bytes (a head blob
//	         first, then one version blob per version; see Blobs)
//
// A write puts the new parts where neither the header nor the current
// slot lies (growing the memfd if needed), then the other slot's entry
// with the next sequence number, then zeroes the old slot's bytes and
// gives their pages back (a hole). A reader takes the valid slot (both
// checksums right, inside the file) with the highest sequence number, so
// a writer killed at any point leaves the last complete snapshot.
package wire
