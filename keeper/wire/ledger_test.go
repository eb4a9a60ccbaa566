package wire

import (
	"bytes"
	"fmt"
	"testing"
)

func someParts(t *testing.T, gen uint64, n int) []Part {
	t.Helper()
	ps := []Part{{Data: []byte(fmt.Sprintf("head-%d", gen))}}
	for g := range uint64(n) {
		ps = append(ps, Part{Gen: gen + g, Data: bytes.Repeat([]byte{byte(gen + g)}, 1000*int(g+1))})
	}
	return ps
}

func equal(a, b []Part) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Gen != b[i].Gen || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// Writes replace the content whole, through growth of the memfd, and what
// is read back (by mapping, and by the keeper's ReadLedger) is the last
// write. The old slot's bytes are zeroed.
func TestLedgerWriteRead(t *testing.T) {
	l, err := NewLedger()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var last []Part
	for g := uint64(1); g < 40; g++ {
		ps := someParts(t, g, int(g%5)+1)
		if g == 20 {
			ps = append(ps, Part{Gen: 99, Data: make([]byte, 300<<10)}) // grows the file
		}
		// The new content reuses slices of the current one, as a journal does.
		if cur := l.Parts(); len(cur) > 1 {
			ps = append(ps, Part{Gen: 1000 + g, Data: cur[1].Data})
		}
		last = nil
		for _, p := range ps {
			last = append(last, Part{Gen: p.Gen, Data: bytes.Clone(p.Data)})
		}
		if err := l.Write(ps); err != nil {
			t.Fatal(err)
		}
		if !equal(l.Parts(), last) {
			t.Fatalf("write %d: parts read back differ", g)
		}
	}
	got, err := ReadLedger(l.FD())
	if err != nil || !equal(got, last) {
		t.Fatalf("ReadLedger: %v (equal %v)", err, equal(got, last))
	}
	// Only one slot's worth of bytes is left in the file.
	nonzero := 0
	for _, b := range l.mem[ledgerHeader:] {
		if b != 0 {
			nonzero++
		}
	}
	size := 0
	for _, p := range last {
		size += partHeader + len(p.Data)
	}
	if nonzero > size {
		t.Errorf("%d non-zero bytes in the data area, want at most the current slot's %d", nonzero, size)
	}
}

// A writer killed midway leaves the last complete content readable: after
// the new parts are written but before their entry, and with the entry
// torn.
func TestLedgerCrashMidWrite(t *testing.T) {
	l, err := NewLedger()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a := someParts(t, 1, 2)
	if err := l.Write(a); err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(l.mem)
	if err := l.Write(someParts(t, 5, 3)); err != nil {
		t.Fatal(err)
	}
	after := l.mem
	next := l.slots[l.cur]
	for _, torn := range []int{0, 8, 20, 31} {
		// The state a crash leaves: the old header and old data, the new
		// data, and torn bytes of the new entry.
		mem := bytes.Clone(before)
		copy(mem[next.off:next.off+next.n], after[next.off:next.off+next.n])
		e := len(ledgerMagic) + l.cur*entrySize
		copy(mem[e:e+torn], after[e:e+torn])
		cur, slots := find(mem)
		if cur < 0 {
			t.Fatalf("torn at %d: no valid slot", torn)
		}
		got, err := parts(mem, slots[cur])
		if err != nil || !equal(got, a) {
			t.Errorf("torn at %d: read %d parts (%v), want the complete first write", torn, len(got), err)
		}
	}
}

func TestLedgerOpen(t *testing.T) {
	l, err := NewLedger()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLedger(dupFD(t, l.FD())); err == nil {
		t.Error("an empty ledger opened")
	}
	ps := someParts(t, 3, 2)
	if err := l.Write(ps); err != nil {
		t.Fatal(err)
	}
	o, err := OpenLedger(dupFD(t, l.FD()))
	if err != nil {
		t.Fatal(err)
	}
	if !equal(o.Parts(), ps) {
		t.Error("opened ledger shows other parts")
	}
	// The taker writes on; the first mapping sees it (one memfd).
	if err := o.Write(someParts(t, 7, 1)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	o.Wipe()
	if got, err := ReadLedger(o.FD()); err == nil {
		t.Errorf("a wiped ledger still reads %d parts", len(got))
	}
	o.Close()
}

func dupFD(t *testing.T, fd int) int {
	t.Helper()
	d, err := dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
