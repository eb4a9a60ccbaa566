// Copyright 2016 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fuse

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const useSingleReader = false

func (r *fuseFD) write(req *request) Status {
	if req.outPayloadSize() == 0 {
		err := handleEINTR(func() error {
			_, err := r.writevFD([][]byte{req.outHeaderBuf, req.outDataBuf})
			return err
		})
		return ToStatus(err)
	}

	if req.readResult != nil {
		defer func() {
			req.readResult.Done()
			req.readResult = nil
		}()
		if ws, ok := req.readResult.(withSlice); ok {
			return r.writeWithSlice(req, ws)
		}

		if r.server.canSplice && !r.server.opts.DisableSplice {
			err := r.trySplice(req, req.readResult)
			if err == nil {
				return OK
			}
			if err != errRecoverSplice {
				r.server.opts.Logger.Println("trySplice:", err)
			}
		}

		req.outPayload, req.status = req.readResult.Bytes(req.outPayload)
		req.serializeHeader(len(req.outPayload))
	}

	_, err := r.writevFD([][]byte{req.outHeaderBuf, req.outDataBuf, req.outPayload})
	return ToStatus(err)
}

// pollClone opens a clone of the FUSE device fd (FUSE_DEV_IOC_CLONE, Linux
// 4.2) in non-blocking mode, registered with the netpoller. The clone
// shares the connection's input queue, so it polls readable exactly when
// fd has a request pending; nothing is read from it.
func pollClone(fd int) (*os.File, error) {
	const fuseDevIocClone = 0x8004e500 // _IOR(229, 0, uint32_t)
	c, err := syscall.Open("/dev/fuse", syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w", err)
	}
	src := uint32(fd)
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(c), fuseDevIocClone, uintptr(unsafe.Pointer(&src))); errno != 0 {
		syscall.Close(c)
		return nil, fmt.Errorf("FUSE_DEV_IOC_CLONE: %w", errno)
	}
	return os.NewFile(uintptr(c), "/dev/fuse"), nil
}

// pending reports whether the device (clone) fd has a request pending or
// the connection is gone; it does not wait.
func pending(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == syscall.EINTR {
			continue
		}
		return err != nil || (n > 0 && fds[0].Revents != 0)
	}
}
