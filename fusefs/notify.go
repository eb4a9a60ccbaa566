package fusefs

import (
	"encoding/binary"
	"syscall"
)

// A Notice is one FUSE notification (kernel → cache invalidation). They
// are written straight to the /dev/fuse descriptor, so that any process
// holding the connection can send them: the keeper does, when it holds the
// mount. A notification can wait in the kernel for a directory lock held by
// a lookup in flight; the process that waits there cannot exit until the
// lookup is answered. A server must therefore not send them itself when it
// may be killed and replaced (a dying server could never exit), which is
// why a kept mount hands its notices to the keeper.
type Notice struct {
	Op     NoticeOp
	Parent uint64 // Delete, Entry: the folder; Inode: the node
	Child  uint64 // Delete: the entry's node
	Name   string // Delete, Entry
}

// NoticeOp is the kind of notification.
type NoticeOp uint8

const (
	// NoticeDelete drops a cached entry and tells watchers of its node
	// IN_DELETE_SELF (FUSE_NOTIFY_DELETE).
	NoticeDelete NoticeOp = iota + 1
	// NoticeEntry drops a cached entry (FUSE_NOTIFY_INVAL_ENTRY).
	NoticeEntry
	// NoticeInode drops a node's cached attributes and pages
	// (FUSE_NOTIFY_INVAL_INODE).
	NoticeInode
)

const (
	fuseNotifyInvalInode = 2
	fuseNotifyInvalEntry = 3
	fuseNotifyDelete     = 6
)

// Send writes the notices to the FUSE descriptor fd, in order. Errors are
// ignored: ENOENT means the kernel had nothing cached.
func Send(fd int, notices []Notice) {
	for _, n := range notices {
		syscall.Write(fd, n.encode())
	}
}

func (n Notice) encode() []byte {
	le := binary.LittleEndian
	var body []byte
	var code int32
	switch n.Op {
	case NoticeDelete:
		code = fuseNotifyDelete
		body = le.AppendUint64(body, n.Parent)
		body = le.AppendUint64(body, n.Child)
		body = le.AppendUint32(body, uint32(len(n.Name)))
		body = le.AppendUint32(body, 0)
		body = append(append(body, n.Name...), 0)
	case NoticeEntry:
		code = fuseNotifyInvalEntry
		body = le.AppendUint64(body, n.Parent)
		body = le.AppendUint32(body, uint32(len(n.Name)))
		body = le.AppendUint32(body, 0)
		body = append(append(body, n.Name...), 0)
	case NoticeInode:
		code = fuseNotifyInvalInode
		body = le.AppendUint64(body, n.Parent)
		body = le.AppendUint64(body, 0) // offset 0, length 0: every page
		body = le.AppendUint64(body, 0)
	}
	// struct fuse_out_header: len, error (the notify code), unique 0.
	msg := le.AppendUint32(nil, uint32(16+len(body)))
	msg = le.AppendUint32(msg, uint32(code))
	msg = le.AppendUint64(msg, 0)
	return append(msg, body...)
}
