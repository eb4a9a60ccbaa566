// Copyright 2026 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fuse

import (
	"io"
	"log"
	"testing"
	"time"
	"unsafe"
)

// TestServersSharePools: every server of the process, whatever its
// options, takes request structs and output buffers from the same
// process-wide pools, and read buffers from one pool per read-buffer size
// whose buffers fit the server's MaxWrite (and keep WriteIn's payload
// block-aligned). The servers, built on fake devices, serve side by side.
func TestServersSharePools(t *testing.T) {
	quiet := log.New(io.Discard, "", 0)
	var kernels []*fakeKernel
	var servers []*Server
	for _, opts := range []MountOptions{
		{MaxWrite: 4096, Logger: quiet},
		{MaxWrite: 4096, SingleThreaded: true, MaxBackground: 3, Logger: quiet},
		{MaxWrite: 256 << 10, Logger: quiet},
	} {
		opts := opts
		k := newFakeKernel(t)
		kernels = append(kernels, k)
		servers = append(servers, k.newServer(nil, &opts))
	}
	small1, small2, big := servers[0], servers[1], servers[2]

	for i, s := range servers {
		if s.fuseFD.reqPool != &requestPool {
			t.Errorf("server %d has a request pool of its own", i)
		}
		if s.fuseFD.buffers != &sharedBuffers || s.protocolServer.buffers != &sharedBuffers {
			t.Errorf("server %d has a buffer pool of its own", i)
		}
		readBufSize, _, _ := requestAccountingSizes(s.opts.MaxWrite)
		buf := s.fuseFD.readPool.Get().([]byte)
		if len(buf) != readBufSize {
			t.Errorf("server %d (MaxWrite %d): read buffer of %d bytes, want %d", i, s.opts.MaxWrite, len(buf), readBufSize)
		}
		if p := uintptr(unsafe.Pointer(&buf[unsafe.Sizeof(WriteIn{})])); p%logicalBlockSize != 0 {
			t.Errorf("server %d: WRITE payload at %#x, not block-aligned", i, p)
		}
		s.fuseFD.readPool.Put(buf)
	}
	if small1.fuseFD.readPool != small2.fuseFD.readPool {
		t.Error("servers with the same MaxWrite have read pools of their own")
	}
	if small1.fuseFD.readPool == big.fuseFD.readPool {
		t.Error("servers with different MaxWrite share a read pool")
	}
	if ps := NewProtocolServer(NewDefaultRawFileSystem(), &MountOptions{}); ps.buffers != &sharedBuffers {
		t.Error("a ProtocolServer has a buffer pool of its own")
	}

	var done []<-chan struct{}
	for _, s := range servers {
		done = append(done, serve(s))
	}
	for i := 0; i < 20; i++ {
		var sent []uint64
		for _, k := range kernels {
			sent = append(sent, k.statfs())
		}
		for j, k := range kernels {
			k.mustReply(sent[j])
		}
	}
	for i, k := range kernels {
		k.close()
		select {
		case <-done[i]:
		case <-time.After(10 * time.Second):
			t.Fatalf("server %d did not stop 10s after its device hung up", i)
		}
	}
}
