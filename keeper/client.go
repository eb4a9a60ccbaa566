package keeper

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

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
	FD   int   // ours now: pass it to fusefs.Serve or close it
	Err  error // the record could not be read; Snap is empty
}

// List returns every mount of this client's kind the keeper holds, each
// with a descriptor.
func (c *Client) List() ([]Entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	type raw struct {
		m     *wire.Message
		fd    int
		blobs [][]byte
	}
	var got []*raw
	fail := func(err error) ([]Entry, error) {
		for _, r := range got {
			closeFD(r.fd)
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
			got = append(got, &raw{m: m, fd: fd})
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
		s, err := wire.Snapshot(r.m.Head, r.blobs)
		for _, b := range r.blobs {
			clear(b)
		}
		clear(r.m.Head)
		if err != nil {
			err = fmt.Errorf("keeper record %s: %w", r.m.ID, err)
		}
		out = append(out, Entry{ID: r.m.ID, Meta: r.m.Meta, Snap: s, FD: r.fd, Err: err})
	}
	return out, nil
}

// Register hands the keeper a mount: a dup of its descriptor is sent, the
// snapshot is what it shows now. The returned journal keeps the keeper's
// copy current (pass Register to fusefs.FS.Attach).
func (c *Client) Register(id string, meta []byte, fd int) func(fusefs.Snapshot) (fusefs.Journal, error) {
	return func(s fusefs.Snapshot) (fusefs.Journal, error) {
		head := wire.HeadOf(&s)
		// The keeper swaps the record in once the versions that follow
		// are all in (a takeover killed midway leaves the old one).
		if err := c.call(&wire.Message{Op: wire.OpRegister, ID: id, Meta: meta, Head: head.Encode(),
			Count: uint64(len(s.Versions))}, fd); err != nil {
			return nil, err
		}
		for i := range s.Versions {
			if err := c.put(id, &s.Versions[i], nil); err != nil {
				return nil, err
			}
		}
		return &journal{c: c, id: id, head: head}, nil
	}
}

func (c *Client) put(id string, v *fusefs.VersionState, head []byte) error {
	blob := wire.EncodeVersion(v)
	defer clear(blob)
	return c.call(&wire.Message{Op: wire.OpPut, ID: id, Gen: v.Gen, Blob: blob, Head: head}, -1)
}

// Forget tells the keeper a mount is gone (unmounted on purpose).
func (c *Client) Forget(id string) error {
	return c.call(&wire.Message{Op: wire.OpForget, ID: id}, -1)
}

// journal keeps one record current. It keeps the record's head itself
// (the keeper cannot read blobs) and sends it with every new version.
type journal struct {
	c  *Client
	id string

	mu   sync.Mutex
	head wire.Head
}

func (j *journal) PutVersion(v fusefs.VersionState) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.head.Current = v.Gen
	for name := range v.Files {
		j.head.Link(name)
	}
	return j.c.put(j.id, &v, j.head.Encode())
}

// notifyChunk keeps a Notify under the control message limit.
const notifyChunk = wire.MaxControl / 2

// Notify hands notices to the keeper, which writes them to the kernel
// from its own process and answers at once: a notification may wait in
// the kernel for a lookup to be answered, and a server waiting there could
// not exit if it were killed (see fusefs.Notice).
func (j *journal) Notify(ns []fusefs.Notice) error {
	wn := wire.Notices(ns)
	for len(wn) > 0 {
		n, size := 0, 0
		for n < len(wn) && (n == 0 || size+len(wn[n].Name)+40 < notifyChunk) {
			size += len(wn[n].Name) + 40
			n++
		}
		if err := j.c.call(&wire.Message{Op: wire.OpNotify, ID: j.id, Notices: wn[:n]}, -1); err != nil {
			return err
		}
		wn = wn[n:]
	}
	return nil
}

func (j *journal) DropVersion(gen uint64) {
	_ = j.c.call(&wire.Message{Op: wire.OpDrop, ID: j.id, Gen: gen}, -1)
}
