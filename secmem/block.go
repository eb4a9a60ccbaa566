//go:build linux

package secmem

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A Block is read-only secret memory shared by everyone who holds the same
// bytes. Its bytes stay valid until its holder calls Release; after that
// the holder must never read them again (the memory is unmapped once the
// last holder lets go, and a read would fault). A nil *Block holds nothing.
type Block struct {
	mem    []byte // the whole mapping, a multiple of the page size
	n      int    // bytes in use
	hash   uint64
	locked bool
	refs   int // guarded by table.mu
}

// Bytes are the block's content. Nobody may write to them.
func (b *Block) Bytes() []byte {
	if b == nil {
		return nil
	}
	return b.mem[:b.n:b.n]
}

// Locked says whether the block is mlock'ed.
func (b *Block) Locked() bool { return b != nil && b.locked }

var (
	seed  = maphash.MakeSeed()
	table = struct {
		mu     sync.Mutex
		blocks map[uint64][]*Block
	}{blocks: map[uint64][]*Block{}}

	// What is held now, for tests and logs.
	heldBlocks, heldBytes, lockedBytes atomic.Int64

	logger     atomic.Pointer[slog.Logger]
	warnedOnce sync.Once
)

// SetLogger sets where the one warning about unlocked memory goes (default
// slog.Default()).
func SetLogger(l *slog.Logger) { logger.Store(l) }

// Share returns a block holding the concatenation of parts: the one
// already held for the same bytes, or a new one. Every call must be paired
// with a Release. No parts (or only empty ones) give a nil block.
func Share(parts [][]byte) (*Block, error) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n == 0 {
		return nil, nil
	}
	h := hashOf(parts)
	table.mu.Lock()
	defer table.mu.Unlock()
	for _, b := range table.blocks[h] {
		if b.holds(parts) {
			b.refs++
			return b, nil
		}
	}
	b, err := newBlock(n, parts)
	if err != nil {
		return nil, err
	}
	b.hash, b.refs = h, 1
	table.blocks[h] = append(table.blocks[h], b)
	return b, nil
}

// Release gives the block back; the last holder's call zeroes and unmaps it.
func (b *Block) Release() {
	if b == nil {
		return
	}
	table.mu.Lock()
	b.refs--
	if b.refs > 0 {
		table.mu.Unlock()
		return
	}
	if b.refs < 0 {
		table.mu.Unlock()
		panic("secmem: block released twice")
	}
	list := table.blocks[b.hash]
	for i, o := range list {
		if o == b {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(table.blocks, b.hash)
	} else {
		table.blocks[b.hash] = list
	}
	table.mu.Unlock()
	b.free()
}

func hashOf(parts [][]byte) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var lenBuf [8]byte
	for _, p := range parts {
		n := len(p)
		for i := range lenBuf {
			lenBuf[i] = byte(n >> (8 * i))
		}
		h.Write(lenBuf[:])
		h.Write(p)
	}
	return h.Sum64()
}

// holds reports whether b is exactly the concatenation of parts. Part
// boundaries are not kept: the hash covers them, and a holder only ever
// reads the whole.
func (b *Block) holds(parts [][]byte) bool {
	rest := b.Bytes()
	for _, p := range parts {
		if len(p) > len(rest) || !bytes.Equal(rest[:len(p)], p) {
			return false
		}
		rest = rest[len(p):]
	}
	return len(rest) == 0
}

func newBlock(n int, parts [][]byte) (*Block, error) {
	page := unix.Getpagesize()
	size := (n + page - 1) / page * page
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map %d bytes of secret memory: %w", size, err)
	}
	_ = unix.Madvise(mem, unix.MADV_DONTDUMP) // belt and braces: cores are off anyway
	b := &Block{mem: mem, n: n}
	// Lock before the bytes go in, so they never sit in swappable pages.
	if err := unix.Mlock(mem); err == nil {
		b.locked = true
		lockedBytes.Add(int64(size))
	} else {
		warnUnlocked(size, err)
	}
	off := 0
	for _, p := range parts {
		off += copy(mem[off:], p)
	}
	heldBlocks.Add(1)
	heldBytes.Add(int64(size))
	return b, nil
}

func (b *Block) free() {
	clear(b.mem)
	size := int64(len(b.mem))
	if b.locked {
		lockedBytes.Add(-size)
	}
	heldBlocks.Add(-1)
	heldBytes.Add(-size)
	// munmap also unlocks. It cannot fail for a mapping made by Mmap.
	_ = unix.Munmap(b.mem)
	b.mem = nil
}

// warnUnlocked says once per process that secret bytes are not locked,
// naming the limit that stopped it.
func warnUnlocked(size int, err error) {
	warnedOnce.Do(func() {
		var lim unix.Rlimit
		_ = unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim)
		l := logger.Load()
		if l == nil {
			l = slog.Default()
		}
		l.Warn("secret bytes are not locked in memory (they may reach swap): the locked-memory limit is reached; raise RLIMIT_MEMLOCK (ulimit -l) to lock them",
			"limit", "RLIMIT_MEMLOCK", "limit_bytes", lim.Cur, "locked_bytes", lockedBytes.Load(), "block_bytes", size, "err", err)
	})
}

// Stats reports what the process holds now: blocks, bytes mapped and bytes
// of them locked.
func Stats() (blocks, mapped, locked int64) {
	return heldBlocks.Load(), heldBytes.Load(), lockedBytes.Load()
}
