// Copyright 2026 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fuse

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fakeKernel stands in for the kernel side of a FUSE connection, so that a
// Server can be built and driven without mounting anything (no root, no
// /dev/fuse): the server gets one end of a SOCK_SEQPACKET socketpair as
// its "device" through the /dev/fd/N mount point, and the test writes
// requests to, and reads replies from, the other end. A seqpacket socket
// keeps message boundaries, so each read(2) of the server returns one
// request, as on /dev/fuse.
type fakeKernel struct {
	t      *testing.T
	fd     int // the kernel's end
	srvFD  int // the server's end, owned by the Server once built
	unique uint64
}

func newFakeKernel(t *testing.T) *fakeKernel {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	k := &fakeKernel{t: t, fd: fds[0], srvFD: fds[1]}
	t.Cleanup(k.close)
	return k
}

// close closes the kernel's end: the server reads EOF.
func (k *fakeKernel) close() {
	if k.fd >= 0 {
		syscall.Close(k.fd)
		k.fd = -1
	}
}

// mountPoint is the magic mount point that hands srvFD to NewServer.
func (k *fakeKernel) mountPoint() string {
	return fmt.Sprintf("/dev/fd/%d", k.srvFD)
}

// newServer builds a Server on the fake device, answering its INIT the
// way the kernel would send it.
func (k *fakeKernel) newServer(fs RawFileSystem, opts *MountOptions) *Server {
	k.t.Helper()
	if fs == nil {
		fs = NewDefaultRawFileSystem()
	}
	init := InitIn{
		Major:        _FUSE_KERNEL_VERSION,
		Minor:        _OUR_MINOR_VERSION,
		MaxReadAhead: 128 << 10,
	}
	k.send(_OP_INIT, 0, unsafe.Slice((*byte)(unsafe.Pointer(&init.Major)), unsafe.Sizeof(init)-unsafe.Sizeof(InHeader{})))
	srv, err := NewServer(fs, k.mountPoint(), opts)
	if err != nil {
		k.t.Fatalf("NewServer on a fake device: %v", err)
	}
	if h, _ := k.reply(5 * time.Second); h.Status != 0 {
		k.t.Fatalf("INIT reply: status %d", h.Status)
	}
	return srv
}

// send writes one request with the given opcode and payload and returns
// its unique id.
func (k *fakeKernel) send(op uint32, nodeID uint64, payload []byte) uint64 {
	k.t.Helper()
	k.unique += 2
	h := InHeader{
		Length: uint32(unsafe.Sizeof(InHeader{})) + uint32(len(payload)),
		Opcode: op,
		Unique: k.unique,
		NodeId: nodeID,
	}
	msg := append(bytes.Clone(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h))), payload...)
	if _, err := syscall.Write(k.fd, msg); err != nil {
		k.t.Fatalf("send %d: %v", op, err)
	}
	return k.unique
}

// statfs sends a STATFS request (no payload; the default file system
// answers ENOSYS) and returns its unique id.
func (k *fakeKernel) statfs() uint64 {
	k.t.Helper()
	return k.send(_OP_STATFS, 1, nil)
}

// reply reads one reply, waiting at most d; ok is false on timeout.
func (k *fakeKernel) reply(d time.Duration) (h OutHeader, ok bool) {
	k.t.Helper()
	if !readable(k.t, k.fd, d) {
		return h, false
	}
	buf := make([]byte, 1<<16)
	n, err := syscall.Read(k.fd, buf)
	if err != nil {
		k.t.Fatalf("read reply: %v", err)
	}
	if n < int(unsafe.Sizeof(h)) {
		k.t.Fatalf("short reply: %d bytes", n)
	}
	h = *(*OutHeader)(unsafe.Pointer(&buf[0]))
	if int(h.Length) != n {
		k.t.Fatalf("reply length %d, read %d bytes", h.Length, n)
	}
	return h, true
}

// readable waits at most d for fd to be readable.
func readable(t *testing.T, fd int, d time.Duration) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(d/time.Millisecond))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		return n > 0
	}
}

// mustReply reads the reply to the request unique.
func (k *fakeKernel) mustReply(unique uint64) {
	k.t.Helper()
	h, ok := k.reply(10 * time.Second)
	if !ok {
		k.t.Fatalf("no reply to request %d within 10s", unique)
	}
	if h.Unique != unique {
		k.t.Fatalf("reply to %d, want %d", h.Unique, unique)
	}
}

// serve runs srv.Serve and returns a channel closed when it returns.
func serve(srv *Server) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		srv.Serve()
		close(done)
	}()
	return done
}

// logBuffer is a MountOptions.Logger destination that tests can read.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *log.Logger { return log.New(b, "", 0) }

var _ io.Writer = (*logBuffer)(nil)

// threads is the number of OS threads of this process.
func threads(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		var n int
		if _, err := fmt.Sscanf(line, "Threads: %d", &n); err == nil {
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// needRoot skips t unless it runs as root, with the line secretfs' test
// summary looks for; as root it fails t if /dev/fuse is missing, so that
// a run as root cannot skip the test silently.
func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("SKIP (needs root: %s)", why)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("running as root but /dev/fuse is unusable (%v)", err)
	}
}
