package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/secmem"
)

// Ledger layout (see "Ledgers" in the package doc).
const (
	ledgerMagic  = "sfsledg1"
	ledgerHeader = 4096     // the header page; data starts after it
	ledgerFirst  = 64 << 10 // a new ledger's size
	entrySize    = 32
	partHeader   = 12 // gen (8) and length (4) before each part's bytes
	// MaxLedger bounds a ledger's size: a mount's snapshot holds a few
	// versions of at most a provider reply each (4 MiB by default).
	MaxLedger = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Part is one piece of a ledger's content: the head blob (Gen 0) or a
// version blob (its generation).
type Part struct {
	Gen  uint64
	Data []byte
}

// A Ledger is a mount's journal in protocol version 2: a sealed memfd that
// the serving process maps and writes the mount's snapshot into before the
// kernel can see a node of a new version. The keeper holds the memfd beside
// the mount's /dev/fuse descriptor and never maps it nor answers for it,
// so the write-ahead step is a local memory write: a slow, stopped or dead
// keeper cannot delay a switch, and a takeover reads the newest complete
// snapshot back. One writer at a time (the caller serializes).
type Ledger struct {
	fd    int
	mem   []byte
	seq   uint64
	cur   int // the valid slot, -1 for none
	slots [2]slotEntry
}

type slotEntry struct {
	seq, off, n uint64
	crc         uint32
}

// NewLedger makes an empty ledger.
func NewLedger() (*Ledger, error) {
	fd, err := unix.MemfdCreate("secretfs-journal", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("journal memfd: %w", err)
	}
	l := &Ledger{fd: fd, cur: -1}
	if err := unix.Ftruncate(fd, ledgerFirst); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("journal memfd: %w", err)
	}
	// Nobody may shrink it under a mapping (a read past the end faults).
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("journal memfd seal: %w", err)
	}
	if l.mem, err = secmem.MapShared(fd, ledgerFirst); err != nil {
		unix.Close(fd)
		return nil, err
	}
	copy(l.mem, ledgerMagic)
	return l, nil
}

// OpenLedger maps a ledger handed over by a keeper; it owns fd from now on
// (closed on error). A ledger without a complete snapshot is an error.
func OpenLedger(fd int) (*Ledger, error) {
	mem, err := mapLedger(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	l := &Ledger{fd: fd, mem: mem, cur: -1}
	l.cur, l.slots = find(mem)
	if l.cur < 0 {
		l.Close()
		return nil, errors.New("journal holds no complete snapshot")
	}
	l.seq = max(l.slots[0].seq, l.slots[1].seq)
	return l, nil
}

func mapLedger(fd int) ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if st.Size < ledgerHeader || st.Size > MaxLedger {
		return nil, fmt.Errorf("journal of %d bytes: not a journal", st.Size)
	}
	mem, err := secmem.MapShared(fd, int(st.Size))
	if err != nil {
		return nil, err
	}
	if string(mem[:len(ledgerMagic)]) != ledgerMagic {
		secmem.UnmapShared(mem)
		return nil, errors.New("not a secretfs journal")
	}
	return mem, nil
}

// ReadLedger copies the parts of the ledger in fd without taking fd: what a
// keeper lists for a server that speaks only protocol version 1.
func ReadLedger(fd int) ([]Part, error) {
	mem, err := mapLedger(fd)
	if err != nil {
		return nil, err
	}
	defer secmem.UnmapShared(mem)
	cur, slots := find(mem)
	if cur < 0 {
		return nil, errors.New("journal holds no complete snapshot")
	}
	ps, err := parts(mem, slots[cur])
	if err != nil {
		return nil, err
	}
	for i := range ps {
		ps[i].Data = clone(ps[i].Data)
	}
	return ps, nil
}

// FD is the memfd, for the keeper to hold.
func (l *Ledger) FD() int { return l.fd }

// Parts is the current content; its slices point into the ledger and are
// valid until the next Write.
func (l *Ledger) Parts() []Part {
	if l.cur < 0 {
		return nil
	}
	ps, _ := parts(l.mem, l.slots[l.cur]) // checked when written or opened
	return ps
}

// Write makes ps the ledger's content, atomically for any reader that
// comes later, even if this process dies midway: the new parts go where
// neither the header nor the current slot lies, then the other slot's
// entry names them with the next sequence number; the old slot's bytes are
// zeroed after. ps may be slices of Parts.
func (l *Ledger) Write(ps []Part) error {
	need := uint64(0)
	for _, p := range ps {
		need += partHeader + uint64(len(p.Data))
	}
	off := uint64(ledgerHeader)
	if l.cur >= 0 && off+need > l.slots[l.cur].off {
		c := l.slots[l.cur]
		off = (c.off + c.n + 63) &^ 63
	}
	if off+need > uint64(len(l.mem)) {
		size := max(2*uint64(len(l.mem)), (off+need+ledgerFirst-1)/ledgerFirst*ledgerFirst)
		if size > MaxLedger {
			return fmt.Errorf("journal of %d bytes would pass its limit of %d", size, MaxLedger)
		}
		if err := unix.Ftruncate(l.fd, int64(size)); err != nil {
			return fmt.Errorf("grow journal: %w", err)
		}
		mem, err := secmem.MapShared(l.fd, int(size))
		if err != nil {
			return err
		}
		// ps may point into the old mapping: it goes once they are copied.
		defer secmem.UnmapShared(l.mem)
		l.mem = mem
	}
	o := off
	for _, p := range ps {
		binary.LittleEndian.PutUint64(l.mem[o:], p.Gen)
		binary.LittleEndian.PutUint32(l.mem[o+8:], uint32(len(p.Data)))
		o += partHeader + uint64(copy(l.mem[o+partHeader:], p.Data))
	}
	next := 0
	if l.cur == 0 {
		next = 1
	}
	e := slotEntry{seq: l.seq + 1, off: off, n: need, crc: crc32.Checksum(l.mem[off:off+need], castagnoli)}
	putEntry(l.mem, next, e)
	if l.cur >= 0 {
		old := l.slots[l.cur]
		putEntry(l.mem, l.cur, slotEntry{})
		l.release(old.off, old.n)
		l.slots[l.cur] = slotEntry{}
	}
	l.cur, l.seq, l.slots[next] = next, e.seq, e
	return nil
}

// release zeroes n bytes at off and gives their whole pages back to the
// kernel (a hole reads as zeros), so a ledger holds about one snapshot's
// pages however often it is written.
func (l *Ledger) release(off, n uint64) {
	clear(l.mem[off : off+n])
	page := uint64(unix.Getpagesize())
	start, end := (off+page-1)/page*page, (off+n)/page*page
	if end > start {
		_ = unix.Fallocate(l.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(start), int64(end-start))
	}
}

// Wipe zeroes the ledger's content (its mount is gone).
func (l *Ledger) Wipe() {
	clear(l.mem[len(ledgerMagic):ledgerHeader])
	l.release(ledgerHeader, uint64(len(l.mem))-ledgerHeader)
	l.cur, l.slots = -1, [2]slotEntry{}
}

// Close unmaps the ledger and closes its memfd; the content stays for
// whoever else holds it (a keeper).
func (l *Ledger) Close() {
	secmem.UnmapShared(l.mem)
	l.mem = nil
	unix.Close(l.fd)
	l.fd = -1
}

func putEntry(mem []byte, i int, e slotEntry) {
	b := mem[len(ledgerMagic)+i*entrySize:][:entrySize]
	le := binary.LittleEndian
	le.PutUint64(b, e.seq)
	le.PutUint64(b[8:], e.off)
	le.PutUint64(b[16:], e.n)
	le.PutUint32(b[24:], e.crc)
	le.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
}

// find returns the valid slot with the highest sequence number (-1 for
// none) and both entries as read (invalid ones zero).
func find(mem []byte) (int, [2]slotEntry) {
	var slots [2]slotEntry
	cur := -1
	for i := range slots {
		b := mem[len(ledgerMagic)+i*entrySize:][:entrySize]
		le := binary.LittleEndian
		e := slotEntry{seq: le.Uint64(b), off: le.Uint64(b[8:]), n: le.Uint64(b[16:]), crc: le.Uint32(b[24:])}
		size := uint64(len(mem))
		switch {
		case e.seq == 0, crc32.Checksum(b[:28], castagnoli) != le.Uint32(b[28:]),
			e.off < ledgerHeader, e.n > size, e.off > size-e.n,
			crc32.Checksum(mem[e.off:e.off+e.n], castagnoli) != e.crc:
			continue
		}
		slots[i] = e
		if cur < 0 || e.seq > slots[cur].seq {
			cur = i
		}
	}
	return cur, slots
}

// parts splits a slot's data; the slices point into mem.
func parts(mem []byte, e slotEntry) ([]Part, error) {
	data := mem[e.off : e.off+e.n]
	var ps []Part
	for len(data) > 0 {
		if len(data) < partHeader {
			return nil, errors.New("journal: truncated part")
		}
		gen := binary.LittleEndian.Uint64(data)
		n := uint64(binary.LittleEndian.Uint32(data[8:]))
		if n > uint64(len(data)-partHeader) {
			return nil, errors.New("journal: part runs past its slot")
		}
		ps = append(ps, Part{Gen: gen, Data: data[partHeader : partHeader+n]})
		data = data[partHeader+n:]
	}
	if len(ps) == 0 || ps[0].Gen != 0 {
		return nil, errors.New("journal: no head")
	}
	return ps, nil
}

func dup(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }
