package keeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/fusefs"
)

// Keeper is the server side: what it holds for each mount.
type Keeper struct {
	log *slog.Logger

	mu     sync.Mutex
	mounts map[string]*held
}

type held struct {
	fd      int
	meta    []byte
	snap    fusefs.Snapshot
	notices chan []fusefs.Notice // delivered in order by one goroutine
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

// forget releases a mount: its notices still go out, its bytes are wiped.
// The caller holds the keeper's lock.
func (h *held) forget() {
	h.close()
	h.snap.Wipe()
}

// close lets deliver finish what is queued, then close the descriptor.
func (h *held) close() { close(h.notices) }

// New makes an empty keeper.
func New(log *slog.Logger) *Keeper {
	if log == nil {
		log = slog.Default()
	}
	return &Keeper{log: log, mounts: map[string]*held{}}
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
	k.log.Info("keeper serving", "socket", path)
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("keeper accept: %w", err)
		}
		go k.handle(c)
	}
}

func (k *Keeper) handle(c *net.UnixConn) {
	defer c.Close()
	for {
		m, fd, err := recv(c)
		if err != nil {
			return
		}
		if err := k.do(c, m, fd); err != nil {
			k.log.Warn("keeper request failed", "op", m.Op, "mount", m.ID, "err", err)
			send(c, &message{Op: opAck, Err: err.Error()}, -1)
			continue
		}
		if m.Op != opList {
			send(c, &message{Op: opAck}, -1)
		}
	}
}

func (k *Keeper) do(c *net.UnixConn, m *message, fd int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	h := k.mounts[m.ID]
	switch m.Op {
	case opRegister:
		if fd < 0 || m.Snap == nil {
			closeFD(fd)
			return errors.New("register needs a descriptor and a snapshot")
		}
		if h != nil {
			h.forget()
		}
		h = &held{fd: fd, meta: m.Meta, snap: *m.Snap, notices: make(chan []fusefs.Notice, 1024)}
		go h.deliver()
		k.mounts[m.ID] = h
		k.log.Info("holding mount", "mount", m.ID, "versions", len(m.Snap.Versions))
	case opPut:
		if h == nil || m.Ver == nil {
			return fmt.Errorf("mount %s is not held", m.ID)
		}
		h.snap.Versions = append(h.snap.Versions, *m.Ver)
		h.snap.Current = m.Ver.Gen
		for name := range m.Ver.Files {
			h.snap.Links = appendTop(h.snap.Links, name)
		}
	case opDrop:
		if h != nil {
			for i, v := range h.snap.Versions {
				if v.Gen == m.Gen {
					v.Wipe()
					h.snap.Versions = append(h.snap.Versions[:i], h.snap.Versions[i+1:]...)
					break
				}
			}
		}
	case opNotify:
		if h == nil {
			return fmt.Errorf("mount %s is not held", m.ID)
		}
		select {
		case h.notices <- m.Notices:
		default:
			return fmt.Errorf("mount %s: notices are not being delivered", m.ID)
		}
	case opForget:
		if h != nil {
			h.forget()
			delete(k.mounts, m.ID)
			k.log.Info("released mount", "mount", m.ID)
		}
	case opList:
		for id, h := range k.mounts {
			snap := h.snap
			if err := send(c, &message{Op: opEntry, ID: id, Meta: h.meta, Snap: &snap}, h.fd); err != nil {
				return err
			}
		}
		return send(c, &message{Op: opEnd}, -1)
	default:
		return fmt.Errorf("unknown request %d", m.Op)
	}
	return nil
}

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
				k.log.Info("mount gone", "mount", id)
			}
		}
		k.mu.Unlock()
	}
}

// Held is the number of mounts held (tests, logs).
func (k *Keeper) Held() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.mounts)
}

// appendTop adds the first element of a file path to a sorted name list.
func appendTop(names []string, file string) []string {
	top, _, _ := strings.Cut(path.Clean(file), "/")
	i, found := slices.BinarySearch(names, top)
	if found {
		return names
	}
	return slices.Insert(names, i, top)
}
