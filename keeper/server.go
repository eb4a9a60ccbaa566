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

	mu     sync.Mutex
	mounts map[key]*held
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
	notices  chan []fusefs.Notice // delivered in order by one goroutine
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

// deliver writes a mount's notices to the kernel. It may wait there until
// the mount's server answers a lookup; that is why it runs here, in the
// keeper, and in its own goroutine.
func (h *held) deliver() {
	for ns := range h.notices {
		fusefs.Send(h.fd, ns)
	}
	syscall.Close(h.fd)
}

// forget releases a record: its notices still go out, its bytes are
// wiped. The caller holds the keeper's lock.
func (h *held) forget() {
	close(h.notices)
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
	return &Keeper{log: log, uid: os.Geteuid(), mounts: map[key]*held{},
		HelloTimeout: DefaultHelloTimeout, IOTimeout: DefaultIOTimeout, MaxConns: DefaultMaxConns}
}

// Serve listens on path (mode 0600) until ctx ends. Mounts stay held while
// the keeper runs; when it exits, its descriptors close, and a mount lives
// on only while its server holds its own.
func (k *Keeper) Serve(ctx context.Context, path string) error {
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
	go func() { <-ctx.Done(); l.Close() }()
	go k.reap(ctx)
	k.log.Info("keeper serving", "socket", path, "protocol", wire.Versions)
	slots := make(chan struct{}, k.MaxConns)
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
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

// kindRE is what a record kind may be ("csi", "mount", or a later one).
var kindRE = regexp.MustCompile(`^[a-z]{1,16}$`)

// handle serves one connection: the peer check, the Hello, then requests
// until the peer goes or stalls.
func (k *Keeper) handle(c *net.UnixConn) {
	defer c.Close()
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
	kind, ok := k.hello(c)
	if !ok {
		return
	}
	s := &session{kind: kind, pending: map[string]*pending{}}
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
	pending map[string]*pending
}

// pending is a Register waiting for its versions. It replaces the held
// record only once complete, so a server killed mid-registration (as a
// takeover re-registers every mount) leaves the last complete record.
type pending struct {
	h    *held
	left uint64
}

// Bounds of registrations under way: a server registers one mount at a
// time, each with the few versions the kernel may still reference.
const (
	maxPending         = 16
	maxPendingVersions = 1024
)

// drop discards the registrations a closed connection left incomplete.
func (k *Keeper) drop(s *session) {
	for _, p := range s.pending {
		p.h.discard()
	}
}

// discard frees a record never held: nothing was delivered through it.
func (h *held) discard() {
	syscall.Close(h.fd)
	clear(h.meta)
	clear(h.head)
	for _, v := range h.versions {
		v.mem.Release()
	}
	h.versions = nil
}

// hello reads the client's Hello and answers it; false: refused.
func (k *Keeper) hello(c *net.UnixConn) (string, bool) {
	c.SetReadDeadline(time.Now().Add(k.HelloTimeout))
	m, fd, err := wire.ReadUnix(c, k.HelloTimeout)
	closeFD(fd)
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			k.refuse(c, wire.CodeUnsupported, "the first message is not a keeper hello (a client of an unversioned release?)")
		}
		k.log.Info("keeper dropped a client before its hello", "err", err)
		return "", false
	}
	if m.Op != wire.OpHello {
		k.refuse(c, wire.CodeUnsupported, "the first message is not a keeper hello")
		return "", false
	}
	v := wire.Choose(wire.Versions, m.Versions)
	if v == 0 {
		theirs := m.Versions[:min(len(m.Versions), 8)]
		k.log.Warn("keeper refused a client: no common protocol version", "keeper", wire.Versions, "client", theirs)
		k.refuse(c, wire.CodeUnsupported, fmt.Sprintf("no common keeper protocol version: keeper speaks %v, client %v", wire.Versions, theirs))
		return "", false
	}
	if !kindRE.MatchString(m.Kind) {
		k.refuse(c, wire.CodeUnsupported, "the hello names no valid record kind")
		return "", false
	}
	return m.Kind, k.send(c, []frame{{m: &wire.Message{Op: wire.OpWelcome, Magic: wire.Magic,
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
	if m.Op != wire.OpRegister {
		closeFD(fd) // only a Register carries a descriptor
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
		if m.Count > 0 && len(s.pending) >= maxPending {
			closeFD(fd)
			return failed(fmt.Errorf("over %d registrations under way on one connection", maxPending))
		}
		nh := &held{fd: fd, meta: m.Meta, head: m.Head}
		if m.Count > 0 {
			s.pending[m.ID] = &pending{h: nh, left: m.Count}
			break
		}
		k.commit(id, nh)
	case wire.OpPut:
		if p := s.pending[m.ID]; p != nil {
			if err := p.h.put(m); err != nil {
				return failed(err)
			}
			if p.left--; p.left == 0 {
				delete(s.pending, m.ID)
				k.commit(id, p.h)
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
		select {
		case h.notices <- wire.FuseNotices(m.Notices):
		default:
			return failed(fmt.Errorf("mount %s: notices are not being delivered", m.ID))
		}
	case wire.OpForget:
		if h != nil {
			h.forget()
			delete(k.mounts, id)
			k.log.Info("released mount", "kind", kind, "mount", m.ID)
		}
	case wire.OpList:
		return k.list(kind)
	default:
		return failed(fmt.Errorf("message type %d is not a request", m.Op))
	}
	return ack()
}

// commit makes h the record held under id. The caller holds the lock.
func (k *Keeper) commit(id key, h *held) {
	if old := k.mounts[id]; old != nil {
		old.forget()
	}
	h.notices = make(chan []fusefs.Notice, 1024)
	go h.deliver()
	k.mounts[id] = h
	k.log.Info("holding mount", "kind", id.kind, "mount", id.id, "versions", len(h.versions))
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
// reply is written without the lock. The caller holds the lock.
func (k *Keeper) list(kind string) []frame {
	var out []frame
	for id, h := range k.mounts {
		if id.kind != kind {
			continue
		}
		dup, err := unix.FcntlInt(uintptr(h.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			for _, f := range out {
				closeFD(f.fd)
			}
			return failed(fmt.Errorf("dup descriptor: %w", err))
		}
		out = append(out, frame{m: &wire.Message{Op: wire.OpEntry, ID: id.id,
			Meta: clone(h.meta), Head: clone(h.head)}, fd: dup})
		for _, v := range h.versions {
			out = append(out, frame{m: &wire.Message{Op: wire.OpVersion, Gen: v.gen, Blob: clone(v.mem.Bytes())}, fd: -1})
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
