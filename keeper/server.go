package keeper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/keeper/wire"
	"github.com/secretfs/secretfs/secmem"
)

// Defaults of the Keeper's limits.
const (
	DefaultHelloTimeout = 5 * time.Second
	DefaultIOTimeout    = 5 * time.Second
	DefaultMaxConns     = 128
)

// Keeper is the server side: what it holds for each mount.
type Keeper struct {
	log *slog.Logger
	uid int

	// HelloTimeout bounds the wait for a new connection's Hello.
	HelloTimeout time.Duration
	// IOTimeout bounds the rest of a frame once its first bytes are in,
	// and the writing of each reply frame: a peer that stalls is dropped.
	IOTimeout time.Duration
	// MaxConns bounds the connections served at once (each server holds
	// one for its lifetime); more are closed at accept.
	MaxConns int
	// ExitWait bounds how long a stopping keeper waits for running
	// servers to hold its mounts (0: no bound; in a Pod the termination
	// grace period bounds it).
	ExitWait time.Duration

	mu     sync.Mutex
	mounts map[key]*held
	conns  map[*net.UnixConn]bool // open connections, closed when Serve ends
}

// key names a record: servers of different kinds never see each other's.
type key struct{ kind, id string }

// held is one record. Its blobs are opaque (see keeper/wire): the keeper
// reads only ids and generation numbers.
type held struct {
	fd       int
	meta     []byte
	head     []byte
	versions []stored
	// journal is the memfd of a record registered in protocol version 2
	// (wire.Ledger): the server writes the versions there itself, so head
	// and versions stay empty. -1 for a version 1 record.
	journal int
	// Notices waiting for delivery, in order; a goroutine delivers them
	// while there are any (none runs for an idle mount).
	nmu        sync.Mutex
	queue      [][]fusefs.Notice
	delivering bool
	forgotten  bool // closed once the queue is empty
	// owner is the connection that registered the record last, nil once
	// it has closed: while it is open its server serves the mount too.
	owner *session
}

// stored is one version's blob. Blobs hold the secret bytes, so they live
// in secmem blocks (mlock'ed where the limit allows, never in a core dump),
// not on the Go heap; the frame they arrived in is zeroed at once.
type stored struct {
	gen uint64
	mem *secmem.Block
}

func store(gen uint64, blob []byte) (stored, error) {
	mem, err := secmem.Share([][]byte{blob})
	clear(blob)
	if err != nil {
		return stored{}, fmt.Errorf("hold version %d: %w", gen, err)
	}
	return stored{gen, mem}, nil
}

// notify queues notices for delivery; false: the backlog is full (the
// server writes them itself).
func (h *held) notify(ns []fusefs.Notice) bool {
	h.nmu.Lock()
	defer h.nmu.Unlock()
	if len(h.queue) >= noticeBacklog {
		return false
	}
	h.queue = append(h.queue, ns)
	if !h.delivering {
		h.delivering = true
		go h.deliver()
	}
	return true
}

// deliver writes a mount's notices to the kernel, in order. It may wait
// there until the mount's server answers a lookup; that is why it runs
// here, in the keeper, in a goroutine of its own while there is work.
func (h *held) deliver() {
	for {
		h.nmu.Lock()
		if len(h.queue) == 0 {
			h.delivering = false
			if h.forgotten {
				h.close()
			}
			h.nmu.Unlock()
			return
		}
		ns := h.queue[0]
		h.queue = h.queue[1:]
		h.nmu.Unlock()
		fusefs.Send(h.fd, ns)
	}
}

func (h *held) close() {
	syscall.Close(h.fd)
	closeFD(h.journal)
}

// forget releases a record: its notices still go out, then its
// descriptors close; its bytes are wiped. The caller holds the keeper's
// lock.
func (h *held) forget() {
	h.nmu.Lock()
	h.forgotten = true
	if !h.delivering {
		h.close()
	}
	h.nmu.Unlock()
	clear(h.meta)
	clear(h.head)
	for _, v := range h.versions {
		v.mem.Release()
	}
	h.versions = nil
}

// New makes an empty keeper.
func New(log *slog.Logger) *Keeper {
	if log == nil {
		log = slog.Default()
	}
	return &Keeper{log: log, uid: os.Geteuid(), mounts: map[key]*held{}, conns: map[*net.UnixConn]bool{},
		HelloTimeout: DefaultHelloTimeout, IOTimeout: DefaultIOTimeout, MaxConns: DefaultMaxConns}
}

// Serve listens on path (mode 0600) until ctx ends and then until no mount
// depends on this keeper alone (see drain). Mounts stay held while the
// keeper runs; when it exits, its descriptors close, and a mount lives on
// only while its server holds its own.
func (k *Keeper) Serve(ctx context.Context, path string) error {
	if err := k.waitOthers(ctx, path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("keeper socket: %w", err)
	}
	old := syscall.Umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("keeper socket: %w", err)
	}
	defer l.Close()
	defer k.hangUp() // as the end of the process would
	stopped := make(chan struct{})
	go func() {
		<-ctx.Done()
		k.drain()
		close(stopped)
		l.Close()
	}()
	reaping, stopReaping := context.WithCancel(context.Background())
	defer stopReaping()
	go k.reap(reaping) // on while draining too
	k.log.Info("keeper serving", "socket", path, "protocol", wire.Versions)
	slots := make(chan struct{}, k.MaxConns)
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			select {
			case <-stopped:
				return nil
			default:
			}
			return fmt.Errorf("keeper accept: %w", err)
		}
		select {
		case slots <- struct{}{}:
			go func() {
				k.handle(c)
				<-slots
			}()
		default:
			// A fresh socket's buffer takes this small frame at once.
			k.log.Warn("keeper connection refused: too many connections", "limit", k.MaxConns)
			k.refuse(c, wire.CodeFailed, fmt.Sprintf("keeper serves its limit of %d connections", k.MaxConns))
			c.Close()
		}
	}
}

// waitOthers waits while another keeper answers at path: one that is
// stopping (draining) serves on there until a running server holds its
// mounts, and a new keeper that took the path over would hide it from
// that server (its Pod forced away, say). The old one unlinks the path as
// it exits.
func (k *Keeper) waitOthers(ctx context.Context, path string) error {
	for logged := false; ; {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		if !logged {
			k.log.Info("another keeper serves the socket; waiting until it stops", "socket", path)
			logged = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("keeper socket %s: another keeper serves it", path)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// drain is the keeper's half of a stop that loses no mount (the server's
// half is at keeper.Link.Hold): a stopping keeper exits only once every
// mount it holds is held by a running server too, one whose connection is
// open and who has not said it is stopping, or once it holds nothing.
// Until then it serves on, so that the next server can list the mounts of
// one that stopped, and register them again. Both DaemonSets may be
// replaced at once: the plugin exits once any keeper, even this one,
// holds every mount; this keeper then waits for the next plugin.
func (k *Keeper) drain() {
	deadline := time.Now().Add(k.ExitWait)
	for logged := false; ; time.Sleep(100 * time.Millisecond) {
		alone := k.alone()
		if alone == 0 {
			k.log.Info("keeper stopping: no mount depends on it alone")
			return
		}
		if k.ExitWait > 0 && time.Now().After(deadline) {
			k.log.Warn("keeper stopping with mounts that no running server holds: they end", "mounts", alone)
			return
		}
		if !logged {
			k.log.Info("keeper stopping: waiting until a running server holds every mount (a second signal ends it now, and them)", "mounts", alone)
			logged = true
		}
	}
}

// alone counts the mounts only this keeper holds.
func (k *Keeper) alone() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, h := range k.mounts {
		if h.owner == nil || h.owner.stopping {
			n++
		}
	}
	return n
}

// kindRE is what a record kind may be ("csi", "mount", or a later one).
var kindRE = regexp.MustCompile(`^[a-z]{1,16}$`)

// hangUp closes every open connection.
func (k *Keeper) hangUp() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for c := range k.conns {
		c.Close()
	}
}

// handle serves one connection: the peer check, the Hello, then requests
// until the peer goes or stalls.
func (k *Keeper) handle(c *net.UnixConn) {
	k.mu.Lock()
	k.conns[c] = true
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		delete(k.conns, c)
		k.mu.Unlock()
		c.Close()
	}()
	uid, err := peerUID(c)
	if err != nil {
		k.log.Warn("keeper connection refused", "err", err)
		return
	}
	if uid != k.uid {
		k.log.Warn("keeper refused a client of another uid", "uid", uid, "own", k.uid)
		k.refuse(c, wire.CodeRefused, fmt.Sprintf("keeper runs as uid %d and refuses a client of uid %d", k.uid, uid))
		return
	}
	kind, version, ok := k.hello(c)
	if !ok {
		return
	}
	s := &session{kind: kind, version: version, pending: map[string]*pending{}}
	defer k.drop(s)
	for {
		c.SetReadDeadline(time.Time{}) // a server may be idle for long
		m, fd, err := wire.ReadUnix(c, k.IOTimeout)
		if err != nil {
			if errors.Is(err, wire.ErrTooLarge) {
				k.log.Warn("keeper dropped a client", "err", err)
			}
			return
		}
		out := k.do(s, m, fd)
		if !k.send(c, out) {
			return
		}
	}
}

// session is one connection's state: its kind and the registrations it
// has begun but not completed.
type session struct {
	kind    string
	version uint32
	pending map[string]*pending
	// stopping: the server said it is terminating (Stopping); it no
	// longer counts as holding its mounts.
	stopping bool
}

// pending is a Register waiting for its versions. It replaces the held
// record only once complete, so a server killed mid-registration (as a
// takeover re-registers every mount) leaves the last complete record.
type pending struct {
	h    *held
	left uint64 // Puts still to come (version 1)
	// journal: its memfd is still to come (version 2, a Journal frame).
	journal bool
}

// Bounds of registrations under way on one connection: memory only, never
// load. A server of this release has one under way at a time (its
// registrations queue in keeper.Link); one of the release before sent
// registrations of concurrent publishes interleaved.
const (
	maxPending         = 1024
	maxPendingVersions = 1024
)

// drop discards the registrations a closed connection left incomplete,
// and its records lose their owner: nothing serves them but the keeper's
// descriptor until the next server takes them back.
func (k *Keeper) drop(s *session) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range s.pending {
		p.h.discard()
	}
	for _, h := range k.mounts {
		if h.owner == s {
			h.owner = nil
		}
	}
}

// discard frees a record never held: nothing was delivered through it.
func (h *held) discard() {
	syscall.Close(h.fd)
	closeFD(h.journal)
	clear(h.meta)
	clear(h.head)
	for _, v := range h.versions {
		v.mem.Release()
	}
	h.versions = nil
}

// hello reads the client's Hello and answers it with the version chosen;
// false: refused.
func (k *Keeper) hello(c *net.UnixConn) (string, uint32, bool) {
	c.SetReadDeadline(time.Now().Add(k.HelloTimeout))
	m, fd, err := wire.ReadUnix(c, k.HelloTimeout)
	closeFD(fd)
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			k.refuse(c, wire.CodeUnsupported, "the first message is not a keeper hello (a client of an unversioned release?)")
		}
		k.log.Info("keeper dropped a client before its hello", "err", err)
		return "", 0, false
	}
	if m.Op != wire.OpHello {
		k.refuse(c, wire.CodeUnsupported, "the first message is not a keeper hello")
		return "", 0, false
	}
	v := wire.Choose(wire.Versions, m.Versions)
	if v == 0 {
		theirs := m.Versions[:min(len(m.Versions), 8)]
		k.log.Warn("keeper refused a client: no common protocol version", "keeper", wire.Versions, "client", theirs)
		k.refuse(c, wire.CodeUnsupported, fmt.Sprintf("no common keeper protocol version: keeper speaks %v, client %v", wire.Versions, theirs))
		return "", 0, false
	}
	if !kindRE.MatchString(m.Kind) {
		k.refuse(c, wire.CodeUnsupported, "the hello names no valid record kind")
		return "", 0, false
	}
	return m.Kind, v, k.send(c, []frame{{m: &wire.Message{Op: wire.OpWelcome, Magic: wire.Magic,
		Version: v, Versions: wire.Versions, Software: wire.Release}, fd: -1}})
}

func (k *Keeper) refuse(c *net.UnixConn, code wire.Code, msg string) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	wire.Write(c, &wire.Message{Op: wire.OpError, Code: code, Err: msg}, -1)
}

// frame is a reply, built under the lock and written after it.
type frame struct {
	m  *wire.Message
	fd int // a dup, closed once sent; -1 for none
}

// send writes the frames, each within IOTimeout; it wipes and closes
// what they carry whatever happens. false: the connection is done.
func (k *Keeper) send(c *net.UnixConn, out []frame) bool {
	ok := true
	for _, f := range out {
		if ok {
			c.SetWriteDeadline(time.Now().Add(k.IOTimeout))
			if err := wire.Write(c, f.m, f.fd); err != nil {
				k.log.Info("keeper dropped a client", "err", err)
				ok = false
			}
		}
		clear(f.m.Meta)
		clear(f.m.Head)
		clear(f.m.Blob)
		closeFD(f.fd)
	}
	return ok
}

func ack() []frame { return []frame{{m: &wire.Message{Op: wire.OpAck}, fd: -1}} }

func failed(err error) []frame {
	return []frame{{m: &wire.Message{Op: wire.OpError, Code: wire.CodeFailed, Err: err.Error()}, fd: -1}}
}

// do applies one request under the lock and returns the reply.
func (k *Keeper) do(s *session, m *wire.Message, fd int) []frame {
	k.mu.Lock()
	defer k.mu.Unlock()
	if m.Op != wire.OpRegister && m.Op != wire.OpJournal {
		closeFD(fd) // only a Register and a Journal carry a descriptor
	}
	kind := s.kind
	id := key{kind, m.ID}
	h := k.mounts[id]
	switch m.Op {
	case wire.OpRegister:
		if fd < 0 {
			return failed(errors.New("register needs a descriptor"))
		}
		if m.Count > maxPendingVersions {
			closeFD(fd)
			return failed(fmt.Errorf("register announces %d versions, over the limit %d", m.Count, maxPendingVersions))
		}
		if p := s.pending[m.ID]; p != nil {
			p.h.discard()
			delete(s.pending, m.ID)
		}
		wantJournal := m.Journal && s.version >= 2
		if (m.Count > 0 || wantJournal) && len(s.pending) >= maxPending {
			closeFD(fd)
			return failed(fmt.Errorf("over %d registrations under way on one connection", maxPending))
		}
		nh := &held{fd: fd, meta: m.Meta, head: m.Head, journal: -1}
		if wantJournal {
			nh.head = nil // a version 2 record's head is in its journal
			s.pending[m.ID] = &pending{h: nh, journal: true}
			break
		}
		if m.Count > 0 {
			s.pending[m.ID] = &pending{h: nh, left: m.Count}
			break
		}
		k.commit(s, id, nh)
	case wire.OpJournal:
		p := s.pending[m.ID]
		if fd < 0 || p == nil || !p.journal {
			closeFD(fd)
			return failed(errors.New("a journal comes with a descriptor, after its Register"))
		}
		p.h.journal = fd
		delete(s.pending, m.ID)
		k.commit(s, id, p.h)
	case wire.OpStopping:
		s.stopping = true
		k.log.Info("a server is stopping; its mounts stay held", "kind", kind)
	case wire.OpPut:
		if p := s.pending[m.ID]; p != nil {
			if err := p.h.put(m); err != nil {
				return failed(err)
			}
			if p.left--; p.left == 0 && !p.journal {
				delete(s.pending, m.ID)
				k.commit(s, id, p.h)
			}
			break
		}
		if h == nil {
			return failed(fmt.Errorf("mount %s is not held", m.ID))
		}
		if err := h.put(m); err != nil {
			return failed(err)
		}
	case wire.OpDrop:
		if h != nil {
			h.versions = slices.DeleteFunc(h.versions, func(s stored) bool {
				if s.gen == m.Gen {
					s.mem.Release()
					return true
				}
				return false
			})
		}
	case wire.OpNotify:
		if h == nil {
			return failed(fmt.Errorf("mount %s is not held", m.ID))
		}
		if !h.notify(wire.FuseNotices(m.Notices)) {
			return failed(fmt.Errorf("mount %s: notices are not being delivered", m.ID))
		}
	case wire.OpForget:
		if h != nil {
			h.forget()
			delete(k.mounts, id)
			k.log.Info("released mount", "kind", kind, "mount", m.ID)
		}
	case wire.OpList:
		return k.list(kind, s.version)
	default:
		return failed(fmt.Errorf("message type %d is not a request", m.Op))
	}
	return ack()
}

// noticeBacklog bounds the notice batches waiting for delivery per mount.
// A server whose Notify finds it full writes them itself.
const noticeBacklog = 32

// commit makes h the record held under id, owned by s. The caller holds
// the lock.
func (k *Keeper) commit(s *session, id key, h *held) {
	if old := k.mounts[id]; old != nil {
		old.forget()
	}
	h.owner = s
	k.mounts[id] = h
	k.log.Debug("holding mount", "kind", id.kind, "mount", id.id, "versions", len(h.versions), "journal", h.journal >= 0)
}

// put adds (or replaces) a version, and the head that came with it.
func (h *held) put(m *wire.Message) error {
	v, err := store(m.Gen, m.Blob)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(h.versions, func(s stored) bool { return s.gen == m.Gen })
	if i >= 0 {
		h.versions[i].mem.Release()
		h.versions[i] = v
	} else {
		h.versions = append(h.versions, v)
	}
	if m.Head != nil {
		clear(h.head)
		h.head = m.Head
	}
	return nil
}

// list copies every record of kind, with a dup of its descriptor, so the
// reply is written without the lock. A version 2 record goes to a version
// 2 client as its journal's memfd; to a version 1 client as the head and
// blobs read from that journal (rollback to the release before). The
// caller holds the lock.
func (k *Keeper) list(kind string, version uint32) []frame {
	var out []frame
	fail := func(err error) []frame {
		for _, f := range out {
			closeFD(f.fd)
			clear(f.m.Head)
			clear(f.m.Blob)
		}
		return failed(err)
	}
	for id, h := range k.mounts {
		if id.kind != kind {
			continue
		}
		dup, err := unix.FcntlInt(uintptr(h.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fail(fmt.Errorf("dup descriptor: %w", err))
		}
		entry := &wire.Message{Op: wire.OpEntry, ID: id.id, Meta: clone(h.meta), Head: clone(h.head)}
		switch {
		case h.journal >= 0 && version >= 2:
			jdup, err := unix.FcntlInt(uintptr(h.journal), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				closeFD(dup)
				return fail(fmt.Errorf("dup journal: %w", err))
			}
			entry.Journal = true
			out = append(out, frame{m: entry, fd: dup}, frame{m: &wire.Message{Op: wire.OpJournal, ID: id.id}, fd: jdup})
		case h.journal >= 0:
			ps, err := wire.ReadLedger(h.journal)
			if err != nil {
				// Not listed: the server of version 1 mounts it afresh.
				closeFD(dup)
				k.log.Warn("mount left out of a list: its journal is unreadable", "mount", id.id, "err", err)
				continue
			}
			entry.Head = ps[0].Data
			out = append(out, frame{m: entry, fd: dup})
			for _, p := range ps[1:] {
				out = append(out, frame{m: &wire.Message{Op: wire.OpVersion, Gen: p.Gen, Blob: p.Data}, fd: -1})
			}
		default:
			out = append(out, frame{m: entry, fd: dup})
			for _, v := range h.versions {
				out = append(out, frame{m: &wire.Message{Op: wire.OpVersion, Gen: v.gen, Blob: clone(v.mem.Bytes())}, fd: -1})
			}
		}
	}
	return append(out, frame{m: &wire.Message{Op: wire.OpEnd}, fd: -1})
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// reap forgets mounts whose connection the kernel has ended (unmounted
// from outside, or lazily detached and released): /dev/fuse then polls
// as an error.
func (k *Keeper) reap(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.mu.Lock()
		for id, h := range k.mounts {
			p := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
			if n, _ := unix.Poll(p, 0); n > 0 && p[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
				h.forget()
				delete(k.mounts, id)
				k.log.Info("mount gone", "kind", id.kind, "mount", id.id)
			}
		}
		k.mu.Unlock()
	}
}

// peerUID is the uid of the process at the other end of c (SO_PEERCRED).
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return -1, fmt.Errorf("peer credentials: %w", cerr)
	}
	return int(cred.Uid), nil
}

func closeFD(fd int) {
	if fd >= 0 {
		syscall.Close(fd)
	}
}
