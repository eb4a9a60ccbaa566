package fusefs

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"syscall"
)

// Self-written notices of this process (see Notice): counted so that a
// planned stop waits for them, and stopped by Quiesce.
var (
	quiet   atomic.Bool
	selfMu  sync.Mutex // orders Add against Quiesce's Wait
	selfRun sync.WaitGroup
)

// sendSelf writes notices from this process unless it is stopping.
func sendSelf(fd int, ns []Notice) {
	selfMu.Lock()
	if quiet.Load() {
		selfMu.Unlock()
		return // the next server replays them (FS.Reconcile)
	}
	selfRun.Add(1)
	selfMu.Unlock()
	defer selfRun.Done()
	Send(fd, ns)
}

// Quiesce stops this process from writing notices itself and waits for
// the ones under way: the first step of a planned stop (see Notice).
// Mounts must still be served meanwhile.
func Quiesce() {
	selfMu.Lock()
	quiet.Store(true)
	selfMu.Unlock()
	selfRun.Wait()
}

// A Notice is one FUSE notification (kernel → cache invalidation). They
// are written straight to the /dev/fuse descriptor, so that any process
// holding the connection can send them: the keeper does, when it holds the
// mount.
//
// The exit hazard. A notification can wait in the kernel for a directory
// lock held by a lookup in flight (uninterruptibly: inode_lock); the
// thread that waits there, and so its process, cannot exit until the
// lookup is answered. Only the mount's server answers lookups. A server
// killed while it writes a notice of its own mount can therefore hang in
// exit when a lookup it had not answered holds that lock, and its Pod
// with it, while the next server cannot start. So a kept mount hands its
// notices to the keeper, and writes them itself (sendSelf) only when the
// keeper has not taken them within keeper.NoticeWait: a keeper that is
// slow, stopped or gone must not hold back an update. A planned stop
// avoids the hazard in order: Quiesce stops new self-written notices and
// waits for those under way, which return because the server still
// answers lookups; only then does Handover stop reading requests.
// Notices left unwritten are replayed by the next server (FS.Reconcile).
// A crash (SIGKILL) in the middle of a self-written notice is the one case
// left, and it needs a keeper that did not answer for 100 ms as well.
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
