package keeper

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/secretfs/secretfs/fusefs"
)

// Client is a server's connection to the keeper. One request at a time.
type Client struct {
	mu   sync.Mutex
	conn *net.UnixConn
}

// Dial connects to the keeper at path.
func Dial(path string) (*Client, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("keeper %s: %w", path, err)
	}
	return &Client{conn: c}, nil
}

// DialWait connects to the keeper at path, waiting up to wait for it to
// come up: in a DaemonSet the keeper's container starts beside the
// plugin's, not before it.
func DialWait(path string, wait time.Duration) (*Client, error) {
	deadline := time.Now().Add(wait)
	for {
		c, err := Dial(path)
		if err == nil || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Close ends the connection; the keeper keeps what it holds.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) call(m *message, fd int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := send(c.conn, m, fd); err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	r, rfd, err := recv(c.conn)
	closeFD(rfd)
	if err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	if r.Err != "" {
		return fmt.Errorf("keeper: %s", r.Err)
	}
	return nil
}

// Entry is one mount the keeper holds.
type Entry struct {
	ID   string
	Meta []byte
	Snap fusefs.Snapshot
	FD   int // ours now: pass it to fusefs.Serve or close it
}

// List returns every mount the keeper holds, each with a descriptor.
func (c *Client) List() ([]Entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := send(c.conn, &message{Op: opList}, -1); err != nil {
		return nil, fmt.Errorf("keeper: %w", err)
	}
	var out []Entry
	for {
		m, fd, err := recv(c.conn)
		if err != nil {
			for _, e := range out {
				closeFD(e.FD)
			}
			return nil, fmt.Errorf("keeper: %w", err)
		}
		switch {
		case m.Op == opEnd:
			return out, nil
		case m.Op == opEntry && m.Snap != nil && fd >= 0:
			out = append(out, Entry{ID: m.ID, Meta: m.Meta, Snap: *m.Snap, FD: fd})
		case m.Err != "":
			return nil, fmt.Errorf("keeper: %s", m.Err)
		default:
			closeFD(fd)
		}
	}
}

// Register hands the keeper a mount: a dup of its descriptor is sent, the
// snapshot is what it shows now. The returned journal keeps the keeper's
// copy current (pass Register to fusefs.FS.Attach).
func (c *Client) Register(id string, meta []byte, fd int) func(fusefs.Snapshot) (fusefs.Journal, error) {
	return func(s fusefs.Snapshot) (fusefs.Journal, error) {
		if err := c.call(&message{Op: opRegister, ID: id, Meta: meta, Snap: &s}, fd); err != nil {
			return nil, err
		}
		return &journal{c: c, id: id}, nil
	}
}

// Forget tells the keeper a mount is gone (unmounted on purpose).
func (c *Client) Forget(id string) error {
	return c.call(&message{Op: opForget, ID: id}, -1)
}

type journal struct {
	c  *Client
	id string
}

func (j *journal) PutVersion(v fusefs.VersionState) error {
	return j.c.call(&message{Op: opPut, ID: j.id, Ver: &v}, -1)
}

// Notify hands notices to the keeper, which writes them to the kernel
// from its own process and answers at once: a notification may wait in
// the kernel for a lookup to be answered, and a server waiting there could
// not exit if it were killed (see fusefs.Notice).
func (j *journal) Notify(ns []fusefs.Notice) error {
	return j.c.call(&message{Op: opNotify, ID: j.id, Notices: ns}, -1)
}

func (j *journal) DropVersion(gen uint64) {
	_ = j.c.call(&message{Op: opDrop, ID: j.id, Gen: gen}, -1)
}
