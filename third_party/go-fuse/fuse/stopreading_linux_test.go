// Copyright 2026 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fuse

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestStopReadingBlockingReaders: after StopReading, a reader blocked in
// read(2) (no PollReads) cannot be woken, so Serve returns only once each
// such reader has read one more request and answered it; no request is
// dropped, and once Serve has returned nothing reads the device: a later
// request stays queued for whoever holds the connection next.
func TestStopReadingBlockingReaders(t *testing.T) {
	var logs logBuffer
	k := newFakeKernel(t)
	srv := k.newServer(nil, &MountOptions{Logger: logs.logger()})
	// The holder of the connection across the handover.
	held, err := syscall.Dup(k.srvFD)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(held)
	done := serve(srv)
	k.mustReply(k.statfs())
	waitBlockedInRead(t, k.srvFD)

	srv.StopReading()
	select {
	case <-done:
		t.Fatal("Serve returned while a reader was blocked in read(2)")
	case <-time.After(100 * time.Millisecond):
	}
	// Each request is answered, or (once no reader is left) stays queued.
	var queued []uint64
	for sent := 1; ; sent++ {
		if sent > srv.maxReaders+1 {
			t.Fatalf("Serve still running after %d requests past StopReading (%d readers at most)", sent-1, srv.maxReaders)
		}
		u := k.statfs()
		answered, stopped := awaitReply(t, k, u, done)
		if !answered {
			queued = append(queued, u)
		}
		if stopped {
			break
		}
	}
	if n := srv.fuseFD.inflightRequestBytes; n != 0 {
		t.Errorf("%d request bytes still accounted in flight after Serve returned", n)
	}
	if got := logs.String(); got != "" {
		t.Errorf("StopReading logged %q", got)
	}

	queued = append(queued, k.statfs())
	buf := make([]byte, 4096)
	for _, u := range queued {
		if !readable(t, held, time.Second) {
			t.Fatalf("request %d, sent after the readers stopped, is not queued", u)
		}
		n, err := syscall.Read(held, buf)
		if err != nil || n < int(unsafe.Sizeof(InHeader{})) {
			t.Fatalf("read queued request: %d bytes, %v", n, err)
		}
		if h := (*InHeader)(unsafe.Pointer(&buf[0])); h.Unique != u || h.Opcode != _OP_STATFS {
			t.Fatalf("queued request %d (opcode %d), want STATFS %d", h.Unique, h.Opcode, u)
		}
	}
}

// awaitReply waits for the reply to u, or for Serve to return (done).
func awaitReply(t *testing.T, k *fakeKernel, u uint64, done <-chan struct{}) (answered, stopped bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if h, ok := k.reply(50 * time.Millisecond); ok {
			if h.Unique != u {
				t.Fatalf("reply to %d, want %d", h.Unique, u)
			}
			answered = true
		}
		select {
		case <-done:
			if !answered {
				_, answered = k.reply(100 * time.Millisecond)
			}
			return answered, true
		default:
			if answered {
				return true, false
			}
		}
	}
	t.Fatalf("request %d neither answered nor left to another holder (Serve still running) after 10s", u)
	return false, false
}

// waitBlockedInRead waits until a thread of this process is blocked in
// read(2) of fd (/proc/self/task/*/syscall: the syscall number, then its
// arguments in hex).
func waitBlockedInRead(t *testing.T, fd int) {
	t.Helper()
	want := fmt.Sprintf("%d %#x ", unix.SYS_READ, fd)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob("/proc/self/task/*/syscall")
		for _, task := range tasks {
			if b, err := os.ReadFile(task); err == nil && strings.HasPrefix(string(b), want) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no thread blocked in read(2) of fd %d after 10s", fd)
}

// TestStopReadingWakesPollWaiters: with a poll clone, readers waiting for
// a request are woken by StopReading and return errStopped without
// reading; a reader that starts after it does not read either.
func TestStopReadingWakesPollWaiters(t *testing.T) {
	f := newFIFOFD(t, idleServer(t))
	const readers = 4
	results := make(chan readResult, readers)
	for i := 0; i < readers; i++ {
		go func() {
			dest, n, err := f.r.read()
			results <- readResult{len(dest), string(dest[:n]), err}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case res := <-results:
		t.Fatalf("a read returned with no request written: %+v", res)
	default:
	}
	f.r.stopReading()
	for i := 0; i < readers; i++ {
		select {
		case res := <-results:
			if res.err != errStopped || res.dev != 0 {
				t.Fatalf("waiting reader after stopReading: %+v, want errStopped and no buffer", res)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d waiting readers still waiting 5s after stopReading", readers-i, readers)
		}
	}

	_, err := f.w.WriteString("late")
	if err != nil {
		t.Fatal(err)
	}
	if dest, n, err := f.r.read(); err != errStopped || dest != nil || n != 0 {
		t.Fatalf("read after stopReading: %q, %v; want errStopped", dest[:n], err)
	}
	buf := make([]byte, 16)
	var n int
	if cerr := f.r.pollConn.Control(func(fd uintptr) { n, err = syscall.Read(int(fd), buf) }); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil || string(buf[:max(n, 0)]) != "late" {
		t.Fatalf("request written after stopReading: %q, %v; want it still queued", buf[:max(n, 0)], err)
	}
}

// TestStopReadingMount hands a real mount over: a PollReads server whose
// readers all wait stops reading and Serve returns at once, without any
// request; the mount stays, and the next request waits for whoever holds
// the device (here the test, which answers it).
func TestStopReadingMount(t *testing.T) {
	needRoot(t, "mounts a FUSE file system")
	var logs logBuffer
	mnt := t.TempDir()
	srv, err := NewServer(NewDefaultRawFileSystem(), mnt, &MountOptions{PollReads: true, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	done := serve(srv)
	held := -1
	defer func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("Unmount: %v", err)
		}
		if held >= 0 {
			syscall.Close(held)
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
	var st syscall.Stat_t
	if err := syscall.Stat(mnt, &st); err != syscall.ENOSYS {
		t.Fatalf("stat: %v, want ENOSYS", err)
	}
	if err := srv.fuseFD.withFD(func(fd int) { held, err = syscall.Dup(fd) }); err != nil || held < 0 {
		t.Fatalf("dup device: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // readers back in the netpoller
	srv.StopReading()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still running 5s after StopReading with every reader waiting")
	}

	stat := make(chan error, 1)
	go func() {
		var st syscall.Stat_t
		stat <- syscall.Stat(mnt+"/x", &st)
	}()
	buf := make([]byte, 1<<20)
	n, err := syscall.Read(held, buf)
	if err != nil || n < int(unsafe.Sizeof(InHeader{})) {
		t.Fatalf("read the next request from the held device: %d bytes, %v", n, err)
	}
	in := (*InHeader)(unsafe.Pointer(&buf[0]))
	if in.Opcode != _OP_LOOKUP || !strings.HasPrefix(string(buf[unsafe.Sizeof(InHeader{}):n]), "x\x00") {
		t.Fatalf("next request: opcode %d, %q; want LOOKUP x", in.Opcode, buf[unsafe.Sizeof(InHeader{}):n])
	}
	out := OutHeader{Length: uint32(unsafe.Sizeof(OutHeader{})), Status: -int32(syscall.ENOENT), Unique: in.Unique}
	if _, err := syscall.Write(held, unsafe.Slice((*byte)(unsafe.Pointer(&out)), unsafe.Sizeof(out))); err != nil {
		t.Fatalf("answer through the held device: %v", err)
	}
	select {
	case err := <-stat:
		if err != syscall.ENOENT {
			t.Fatalf("stat after the handover: %v, want ENOENT from the new holder", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stat not answered")
	}
}
