//go:build linux

package secmem

import (
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sharedLocked remembers which shared mappings are locked, by address, so
// that UnmapShared keeps the locked-bytes count true.
var sharedLocked sync.Map

// MapShared maps size bytes of the file fd for reading and writing, shared
// with every other mapping of it (a keeper's journal memfd: see
// keeper/wire.Ledger). Like a Block it never reaches a core dump and is
// locked (as its pages are touched) while RLIMIT_MEMLOCK allows; unlike a Block its bytes belong to
// the file and outlive the mapping, so UnmapShared does not zero them.
func MapShared(fd, size int) ([]byte, error) {
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %d bytes of shared secret memory: %w", size, err)
	}
	_ = unix.Madvise(mem, unix.MADV_DONTDUMP)
	// Locked as pages are touched (Linux 4.4), so a journal costs the
	// pages it uses, not its size.
	if err := mlockOnFault(mem); err == nil {
		sharedLocked.Store(uintptr(unsafe.Pointer(&mem[0])), true)
		lockedBytes.Add(int64(size))
	} else {
		warnUnlocked(size, err)
	}
	heldBytes.Add(int64(size))
	return mem, nil
}

// UnmapShared undoes MapShared.
func UnmapShared(mem []byte) {
	if len(mem) == 0 {
		return
	}
	size := int64(len(mem))
	if _, ok := sharedLocked.LoadAndDelete(uintptr(unsafe.Pointer(&mem[0]))); ok {
		lockedBytes.Add(-size)
	}
	heldBytes.Add(-size)
	_ = unix.Munmap(mem)
}

// mlockOnFault is mlock2(MLOCK_ONFAULT), which x/sys/unix does not wrap.
func mlockOnFault(mem []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_MLOCK2, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), unix.MLOCK_ONFAULT)
	if errno != 0 {
		return errno
	}
	return nil
}
