// Copyright 2026 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fuse

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fifoFD is a fuseFD whose device is a FIFO instead of /dev/fuse. It reads
// a blocking open file description of the FIFO and polls another,
// non-blocking one, as a PollReads server reads its device and polls a
// FUSE_DEV_IOC_CLONE'd clone of it: both descriptions see the same queue,
// as the clone shares the connection's input queue. w writes "requests".
type fifoFD struct {
	r *fuseFD
	w *os.File
}

func newFIFOFD(t *testing.T, srv *Server) *fifoFD {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dev")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// The non-blocking reader first: then opening the writer and the
	// blocking reader does not wait.
	poll, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := srv.newFuseFD(dev) // srv has no PollReads: no clone of its own
	if err != nil {
		t.Fatal(err)
	}
	r.poll = poll
	if r.pollConn, err = poll.SyscallConn(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Close()
		r.close()
	})
	return &fifoFD{r: r, w: w}
}

// idleServer is a Server built on a fake device, never served: tests use
// it for its configuration and pools.
func idleServer(t *testing.T) *Server {
	t.Helper()
	k := newFakeKernel(t)
	srv := k.newServer(nil, &MountOptions{Logger: log.New(io.Discard, "", 0)})
	t.Cleanup(func() { srv.fuseFD.close() })
	return srv
}

type readResult struct {
	dev  int
	data string
	err  error
}

// TestPollReadsWaitHoldsNoThread: readers waiting for a request wait in
// the netpoller, not in read(2), so they pin no OS thread; of two readers
// of one device, one request wakes exactly one (the other waits on, still
// without a thread); and at EOF (the FIFO's stand-in for the EPOLLERR of
// an unmount) every reader returns.
func TestPollReadsWaitHoldsNoThread(t *testing.T) {
	srv := idleServer(t)
	const devices = 64
	fds := make([]*fifoFD, devices)
	for i := range fds {
		fds[i] = newFIFOFD(t, srv)
	}
	before := threads(t)
	results := make(chan readResult, 2*devices)
	for i, f := range fds {
		for j := 0; j < 2; j++ {
			go func(i int, f *fifoFD) {
				dest, n, err := f.r.read()
				results <- readResult{i, string(dest[:n]), err}
			}(i, f)
		}
	}
	time.Sleep(300 * time.Millisecond)
	select {
	case res := <-results:
		t.Fatalf("a read returned with no request written: %+v", res)
	default:
	}
	// Blocking reads would add a thread per reader (128).
	if grown := threads(t) - before; grown > devices/4 {
		t.Fatalf("%d readers waiting on %d devices added %d threads; want them waiting in the netpoller", 2*devices, devices, grown)
	}

	for i, f := range fds {
		fmt.Fprintf(f.w, "request %d", i)
	}
	seen := map[int]bool{}
	for j := 0; j < devices; j++ {
		select {
		case res := <-results:
			if res.err != nil || res.data != fmt.Sprintf("request %d", res.dev) || seen[res.dev] {
				t.Fatalf("read on device %d: %q, %v (seen before: %v)", res.dev, res.data, res.err, seen[res.dev])
			}
			seen[res.dev] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d requests read after 10s", len(seen), devices)
		}
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case res := <-results:
		t.Fatalf("one request woke two readers of device %d: second read %q, %v", res.dev, res.data, res.err)
	default:
	}
	if grown := threads(t) - before; grown > devices/4 {
		t.Fatalf("%d readers still waiting added %d threads; want them waiting in the netpoller", devices, grown)
	}

	for _, f := range fds {
		f.w.Close()
	}
	for j := 0; j < devices; j++ {
		select {
		case res := <-results:
			if res.err != nil || res.data != "" {
				t.Fatalf("read on device %d after its writer closed: %q, %v; want EOF", res.dev, res.data, res.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("readers still waiting 10s after their device hung up")
		}
	}
}

// TestPollReadsFallback: where the device cannot be cloned (here it is a
// socket, not /dev/fuse) the server says so through the Logger and serves
// with blocking reads.
func TestPollReadsFallback(t *testing.T) {
	var logs logBuffer
	k := newFakeKernel(t)
	srv := k.newServer(nil, &MountOptions{PollReads: true, Logger: logs.logger()})
	if srv.fuseFD.poll != nil || srv.fuseFD.pollConn != nil {
		t.Fatal("poll clone of a socket")
	}
	if got := logs.String(); !strings.Contains(got, "PollReads: ") || !strings.Contains(got, "; reads block") {
		t.Fatalf("log %q does not say that reads block", got)
	}
	done := serve(srv)
	for i := 0; i < 3; i++ {
		k.mustReply(k.statfs())
	}
	k.close() // EOF: the server's readers end, as at an unmount
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return 10s after its device hung up")
	}
}

// TestPollReadsMount serves a real mount with PollReads: the server polls
// a clone, leaves its own fd blocking (another process holding the fd
// must not inherit O_NONBLOCK), answers requests, and its readers, waiting
// in the netpoller, end at the unmount.
func TestPollReadsMount(t *testing.T) {
	needRoot(t, "mounts a FUSE file system")
	var logs logBuffer
	mnt := t.TempDir()
	srv, err := NewServer(NewDefaultRawFileSystem(), mnt, &MountOptions{PollReads: true, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	done := serve(srv)
	defer func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("Unmount: %v", err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return 10s after the unmount")
		}
	}()
	if err := srv.WaitMount(); err != nil {
		t.Fatal(err)
	}
	if srv.fuseFD.pollConn == nil {
		t.Fatalf("no poll clone; log: %q", logs.String())
	}
	var flags int
	if err := srv.fuseFD.withFD(func(fd int) { flags, err = unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0) }); err != nil {
		t.Fatal(err)
	}
	if err != nil || flags&unix.O_NONBLOCK != 0 {
		t.Fatalf("device fd flags %#x, %v: want it blocking", flags, err)
	}
	for i := 0; i < 5; i++ {
		// The default file system answers GETATTR with ENOSYS.
		var st syscall.Stat_t
		if err := syscall.Stat(mnt, &st); err != syscall.ENOSYS {
			t.Fatalf("stat: %v, want ENOSYS", err)
		}
		time.Sleep(20 * time.Millisecond) // readers back in the netpoller
	}
}
