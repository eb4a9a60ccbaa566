// Copyright 2026 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fuse

import (
	"sync"
	"unsafe"
)

// Request structs and buffers are pooled per process, not per server: a
// per-server sync.Pool keeps a buffer per mount until the next GC, which
// an idle process may not run for a long time, so a process serving
// many mounts would hold one buffer for each.
var (
	sharedBuffers bufferPool

	requestPool = sync.Pool{New: func() any {
		return &requestAlloc{
			request: request{
				cancel: make(chan struct{}),
			},
		}
	}}

	readPoolsMu sync.Mutex
	readPools   = map[int]*sync.Pool{} // by read buffer size
)

// readPool returns the process's pool of request read buffers for
// servers with the given MaxWrite.
func readPool(maxWrite int) *sync.Pool {
	readBufSize, readBufBytes, _ := requestAccountingSizes(maxWrite)
	readPoolsMu.Lock()
	defer readPoolsMu.Unlock()
	p := readPools[readBufSize]
	if p == nil {
		p = &sync.Pool{New: func() any {
			// O_DIRECT typically requires buffers aligned to
			// blocksize (see man 2 open), but requirements vary
			// across file systems. Presumably, we could also fix
			// this by reading the requests using readv.
			buf := make([]byte, readBufBytes)
			buf = alignSlice(buf, unsafe.Sizeof(WriteIn{}), logicalBlockSize, uintptr(readBufSize))
			return buf
		}}
		readPools[readBufSize] = p
	}
	return p
}
