package keeper

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/keeper/wire"
)

// Record kinds: each server takes back only its own.
const (
	KindCSI   = "csi"
	KindMount = "mount"
)

// CallTimeout bounds each request to the keeper, which answers at once.
const CallTimeout = 10 * time.Second

// speaks is what a client offers in its Hello (tests change it).
var speaks = wire.Versions

// checkPeer is off only in a test that needs the keeper's own check.
var checkPeer = true

// RefusedError is a keeper and this process refusing each other: another
// uid at either end, or no protocol version in common. Retrying the same
// keeper cannot help.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "keeper refused: " + e.Reason }

// Client is a server's connection to the keeper. One request at a time.
type Client struct {
	mu      sync.Mutex
	conn    *net.UnixConn
	version uint32
	lost    error // set once the connection failed mid-request
	// busy is when the request under way began (Unix nanoseconds), 0
	// when none is: a notice does not queue behind a keeper that is slow.
	busy atomic.Int64
}

// Dial connects to the keeper at path for records of kind: it checks the
// keeper's uid and settles the protocol version.
func Dial(path, kind string) (*Client, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("keeper %s: %w", path, err)
	}
	cl, err := hello(c, kind)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("keeper %s: %w", path, err)
	}
	return cl, nil
}

func hello(c *net.UnixConn, kind string) (*Client, error) {
	uid, err := peerUID(c)
	if err != nil {
		return nil, err
	}
	if own := os.Geteuid(); uid != own && checkPeer {
		return nil, &RefusedError{fmt.Sprintf("the keeper runs as uid %d, this process as uid %d", uid, own)}
	}
	c.SetDeadline(time.Now().Add(DefaultHelloTimeout))
	defer c.SetDeadline(time.Time{})
	werr := wire.Write(c, &wire.Message{Op: wire.OpHello, Magic: wire.Magic, Versions: speaks,
		Kind: kind, Software: wire.Release}, -1)
	// A keeper that refuses at accept may have answered and hung up
	// before the hello went out: its answer is still there to read.
	m, fd, err := wire.ReadUnix(c, DefaultHelloTimeout)
	closeFD(fd)
	if werr != nil && (err != nil || m.Op != wire.OpError) {
		return nil, fmt.Errorf("hello: %w", werr)
	}
	switch {
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return nil, fmt.Errorf("hello: no answer within %v", DefaultHelloTimeout)
	case err != nil:
		// An unversioned keeper cannot decode a Hello and hangs up.
		return nil, &RefusedError{"the keeper does not answer a versioned hello (a release before keeper protocol 1?)"}
	case m.Op == wire.OpError && (m.Code == wire.CodeRefused || m.Code == wire.CodeUnsupported):
		return nil, &RefusedError{short(m.Err)}
	case m.Op == wire.OpError:
		return nil, fmt.Errorf("hello: %s", short(m.Err))
	case m.Op != wire.OpWelcome || wire.Choose(speaks, []uint32{m.Version}) == 0:
		return nil, &RefusedError{"the keeper answered the hello with no protocol version this process speaks"}
	}
	return &Client{conn: c, version: m.Version}, nil
}

// short bounds a reason from the keeper before it reaches a log.
func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// DialWait connects to the keeper at path, waiting up to wait for it to
// come up: in a DaemonSet the keeper's container starts beside the
// plugin's, not before it. A refusal ends the wait at once.
func DialWait(path, kind string, wait time.Duration) (*Client, error) {
	deadline := time.Now().Add(wait)
	for {
		c, err := Dial(path, kind)
		var refused *RefusedError
		if err == nil || errors.As(err, &refused) || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Version is the protocol version in use.
func (c *Client) Version() uint32 { return c.version }

// Close ends the connection; the keeper keeps what it holds.
func (c *Client) Close() error { return c.conn.Close() }

// exchange sends m (with fd) and reads one reply frame, within
// CallTimeout. A failure loses the connection: a reply may be half read.
// The caller holds c.mu.
func (c *Client) exchange(m *wire.Message, fd int) (*wire.Message, int, error) {
	if c.lost != nil {
		return nil, -1, c.lost
	}
	c.busy.Store(time.Now().UnixNano())
	defer c.busy.Store(0)
	if m != nil {
		c.conn.SetDeadline(time.Now().Add(CallTimeout))
		if err := wire.Write(c.conn, m, fd); err != nil {
			return nil, -1, c.lose(err)
		}
	}
	c.conn.SetDeadline(time.Now().Add(CallTimeout))
	r, rfd, err := wire.ReadUnix(c.conn, CallTimeout)
	if err != nil {
		return nil, -1, c.lose(err)
	}
	return r, rfd, nil
}

func (c *Client) lose(err error) error {
	c.lost = fmt.Errorf("keeper connection lost: %w", err)
	c.conn.Close()
	return c.lost
}

func (c *Client) call(m *wire.Message, fd int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, rfd, err := c.exchange(m, fd)
	if err != nil {
		return err
	}
	closeFD(rfd)
	switch r.Op {
	case wire.OpAck:
		return nil
	case wire.OpError:
		return fmt.Errorf("keeper: %s", short(r.Err))
	}
	return c.lose(fmt.Errorf("reply of type %d to a request", r.Op))
}

// Entry is one mount the keeper holds.
type Entry struct {
	ID   string
	Meta []byte
	Snap fusefs.Snapshot
	FD   int // ours now: pass it to fusefs.Serve or close it
	// Ledger is the mount's journal (protocol version 2), ours now: the
	// volume goes on writing it (Link.Journal); nil for a record of
	// version 1, whose snapshot came as blobs.
	Ledger *wire.Ledger
	Err    error // the record could not be read; Snap is empty
}

// List returns every mount of this client's kind the keeper holds, each
// with a descriptor.
func (c *Client) List() ([]Entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	type raw struct {
		m       *wire.Message
		fd      int
		journal int
		blobs   [][]byte
	}
	var got []*raw
	fail := func(err error) ([]Entry, error) {
		for _, r := range got {
			closeFD(r.fd)
			closeFD(r.journal)
			for _, b := range r.blobs {
				clear(b)
			}
		}
		return nil, err
	}
	req := &wire.Message{Op: wire.OpList}
	for {
		m, fd, err := c.exchange(req, -1)
		req = nil
		if err != nil {
			return fail(err)
		}
		switch {
		case m.Op == wire.OpEntry && fd >= 0:
			got = append(got, &raw{m: m, fd: fd, journal: -1})
			continue
		case m.Op == wire.OpJournal && fd >= 0 && len(got) > 0 && got[len(got)-1].m.Journal && got[len(got)-1].journal < 0:
			got[len(got)-1].journal = fd
			continue
		case m.Op == wire.OpVersion && len(got) > 0:
			got[len(got)-1].blobs = append(got[len(got)-1].blobs, m.Blob)
			continue
		case m.Op == wire.OpEnd:
		case m.Op == wire.OpError:
			closeFD(fd)
			return fail(fmt.Errorf("keeper: %s", short(m.Err)))
		default:
			closeFD(fd)
			return fail(c.lose(fmt.Errorf("reply of type %d to a list", m.Op)))
		}
		break
	}
	out := make([]Entry, 0, len(got))
	for _, r := range got {
		e := Entry{ID: r.m.ID, Meta: r.m.Meta, FD: r.fd}
		if r.m.Journal {
			e.Snap, e.Ledger, e.Err = readJournal(r.journal)
		} else {
			e.Snap, e.Err = wire.Snapshot(r.m.Head, r.blobs)
		}
		for _, b := range r.blobs {
			clear(b)
		}
		clear(r.m.Head)
		if e.Err != nil {
			e.Err = fmt.Errorf("keeper record %s: %w", r.m.ID, e.Err)
		}
		out = append(out, e)
	}
	return out, nil
}

// readJournal opens a record's ledger and reads its snapshot back.
func readJournal(fd int) (fusefs.Snapshot, *wire.Ledger, error) {
	if fd < 0 {
		return fusefs.Snapshot{}, nil, errors.New("journal missing from the list")
	}
	l, err := wire.OpenLedger(fd)
	if err != nil {
		return fusefs.Snapshot{}, nil, err
	}
	ps := l.Parts()
	blobs := make([][]byte, 0, len(ps)-1)
	for _, p := range ps[1:] {
		blobs = append(blobs, p.Data)
	}
	s, err := wire.Snapshot(ps[0].Data, blobs) // copies what it keeps
	if err != nil {
		l.Close()
		return fusefs.Snapshot{}, nil, err
	}
	return s, l, nil
}

// Forget tells the keeper a mount is gone (unmounted on purpose).
func (c *Client) Forget(id string) error {
	return c.call(&wire.Message{Op: wire.OpForget, ID: id}, -1)
}

// register hands the keeper a mount: a dup of its descriptor fd and its
// journal. In protocol version 2 the journal's memfd goes along; in
// version 1 its content goes as head and blobs, and every later version
// follows as a Put (put).
func (c *Client) register(id string, meta []byte, fd int, ps []wire.Part) error {
	if c.version >= 2 {
		return errors.New("register: a version 2 record needs its ledger")
	}
	// The keeper swaps the record in once the versions that follow are
	// all in (a takeover killed midway leaves the old one).
	if err := c.call(&wire.Message{Op: wire.OpRegister, ID: id, Meta: meta, Head: ps[0].Data,
		Count: uint64(len(ps) - 1)}, fd); err != nil {
		return err
	}
	for _, p := range ps[1:] {
		if err := c.put(id, p.Gen, p.Data, nil); err != nil {
			return err
		}
	}
	return nil
}

// registerLedger is register in protocol version 2: the record is the
// ledger's memfd, which the keeper holds without reading.
func (c *Client) registerLedger(id string, meta []byte, fd, ledger int) error {
	if err := c.call(&wire.Message{Op: wire.OpRegister, ID: id, Meta: meta, Journal: true}, fd); err != nil {
		return err
	}
	return c.call(&wire.Message{Op: wire.OpJournal, ID: id}, ledger)
}

func (c *Client) put(id string, gen uint64, blob, head []byte) error {
	return c.call(&wire.Message{Op: wire.OpPut, ID: id, Gen: gen, Blob: blob, Head: head}, -1)
}

func (c *Client) drop(id string, gen uint64) error {
	return c.call(&wire.Message{Op: wire.OpDrop, ID: id, Gen: gen}, -1)
}

// notifyChunk keeps a Notify under the control message limit.
const notifyChunk = wire.MaxControl / 2

// notify hands notices to the keeper, which writes them to the kernel
// from its own process (see fusefs.Notice for why).
func (c *Client) notify(id string, ns []fusefs.Notice) error {
	wn := wire.Notices(ns)
	for len(wn) > 0 {
		n, size := 0, 0
		for n < len(wn) && (n == 0 || size+len(wn[n].Name)+40 < notifyChunk) {
			size += len(wn[n].Name) + 40
			n++
		}
		if err := c.call(&wire.Message{Op: wire.OpNotify, ID: id, Notices: wn[:n]}, -1); err != nil {
			return err
		}
		wn = wn[n:]
	}
	return nil
}

// stopping tells the keeper this server is terminating: it no longer
// counts as holding its mounts (protocol version 2).
func (c *Client) stopping() error {
	if c.version < 2 {
		return nil
	}
	return c.call(&wire.Message{Op: wire.OpStopping}, -1)
}

// alive reports whether the keeper is still at the other end: with no
// request under way nothing may be readable, and a hang-up or a stray
// frame says the connection is over.
func (c *Client) alive() bool {
	if !c.mu.TryLock() {
		return true // a request under way finds out itself
	}
	defer c.mu.Unlock()
	if c.lost != nil {
		return false
	}
	raw, err := c.conn.SyscallConn()
	if err != nil {
		return false
	}
	ok := true
	raw.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		if n, _ := unix.Poll(p, 0); n > 0 && p[0].Revents != 0 {
			ok = false
		}
	})
	if !ok {
		c.lose(errors.New("the keeper closed the connection"))
	}
	return ok
}
