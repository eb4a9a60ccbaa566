package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/projection"
)

func TestChoose(t *testing.T) {
	for _, c := range []struct {
		ours, theirs []uint32
		want         uint32
	}{
		{[]uint32{1}, []uint32{1}, 1},
		{[]uint32{1, 2}, []uint32{1}, 1}, // N+1 meets N
		{[]uint32{1}, []uint32{1, 2}, 1}, // N meets N+1
		{[]uint32{2, 3}, []uint32{3, 2}, 3},
		{[]uint32{1}, []uint32{99}, 0},
		{[]uint32{1}, nil, 0},
	} {
		if got := Choose(c.ours, c.theirs); got != c.want {
			t.Errorf("Choose(%v, %v) = %d, want %d", c.ours, c.theirs, got, c.want)
		}
	}
}

// A header over its type's limit is refused before its body is read.
func TestLimits(t *testing.T) {
	for op, size := range map[Op]uint32{OpNotify: MaxControl + 1, OpList: MaxControl + 1, OpPut: MaxRecord + 1} {
		var hdr [HeaderSize]byte
		binary.BigEndian.PutUint32(hdr[:], size)
		hdr[4] = byte(op)
		r := &countingReader{r: bytes.NewReader(append(hdr[:], make([]byte, 100)...))}
		if _, err := Read(r); !errors.Is(err, ErrTooLarge) || r.n > HeaderSize {
			t.Errorf("type %d of %d bytes: %v after reading %d bytes", op, size, err, r.n)
		}
	}
	m := &Message{Op: OpNotify, ID: "/t", Notices: make([]Notice, MaxControl/4)}
	if err := Write(nil, m, -1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("writing an oversized notify: %v", err)
	}
}

type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// Unknown fields are skipped (rule 4 of the compatibility rule), so a
// newer peer's additions do not stop an older one.
func TestUnknownFieldsSkipped(t *testing.T) {
	body := (&Message{Op: OpDrop, ID: "/t", Gen: 4}).Encode(nil)
	body = appendBytes(body, 40, []byte("a field from a later release"))
	body = appendVarint(body, 41, 7)
	m, err := Decode(OpDrop, body)
	if err != nil || m.ID != "/t" || m.Gen != 4 {
		t.Fatalf("decode with unknown fields: %+v, %v", m, err)
	}
}

// One buffer holds an encoded version or message: no outgrown copy of
// secret bytes is left behind by append.
func TestEncodeInOneBuffer(t *testing.T) {
	v := fusefs.VersionState{Gen: 1, Name: "..x", Files: map[string]projection.File{}}
	for i := range 50 {
		v.Files[fmt.Sprintf("dir/file-%d", i)] = projection.File{Mode: 0o644, Data: bytes.Repeat([]byte{'s'}, i*1000)}
	}
	b := EncodeVersion(&v)
	if len(b) > cap(b) || cap(b) > len(b)+64+50*48+len(v.Name) {
		t.Errorf("version blob: len %d, cap %d", len(b), cap(b))
	}
	got, err := DecodeVersion(b)
	if err != nil || !reflect.DeepEqual(got.Files, v.Files) {
		t.Errorf("round trip: %v", err)
	}
	m := &Message{Op: OpPut, ID: "/t", Gen: 1, Blob: b, Head: []byte{1, 2}}
	if body := m.Encode(make([]byte, 0, m.room())); len(body) > m.room() {
		t.Errorf("message of %d bytes over its room %d", len(body), m.room())
	}
}

// A SubPathUpdates volume's head says so, and its versions carry each
// path's change time: a server taking it over rebuilds the same stable
// node IDs and mtimes. Old blobs, without them, decode as before.
func TestSubPathRoundTrip(t *testing.T) {
	h := Head{Start: time.Unix(5, 0), Current: 3, SubPath: true}
	got, err := DecodeHead(h.Encode())
	if err != nil || !got.SubPath || got.Current != 3 {
		t.Fatalf("head round trip: %+v, %v", got, err)
	}
	if old, _ := DecodeHead((&Head{Current: 3}).Encode()); old.SubPath {
		t.Error("a head without field 4 reads as SubPath")
	}
	when := time.Unix(7, 123)
	v := fusefs.VersionState{Gen: 3, Name: "..x", Created: time.Unix(9, 0),
		Files:   map[string]projection.File{"a/b": {Mode: 0o644, Data: []byte("s")}},
		Changed: map[string]time.Time{"a": when, "a/b": when.Add(1)},
		Sources: map[string]int{"a/b": 1}}
	b := EncodeVersion(&v)
	if len(b) > cap(b) || cap(b) > len(b)+64+2*48+len(v.Name)+2*32+16+3 {
		t.Errorf("version blob: len %d, cap %d (outgrew its buffer)", len(b), cap(b))
	}
	back, err := DecodeVersion(b)
	if err != nil || !back.Changed["a"].Equal(when) || !back.Changed["a/b"].Equal(when.Add(1)) || len(back.Changed) != 2 {
		t.Fatalf("version round trip: %v, %v", back.Changed, err)
	}
	if len(back.Sources) != 1 || back.Sources["a/b"] != 1 {
		t.Errorf("sources round trip: %v", back.Sources)
	}
	s, err := Snapshot(h.Encode(), [][]byte{b})
	if err != nil || !s.SubPath || len(s.Versions) != 1 {
		t.Fatalf("snapshot: %+v, %v", s, err)
	}
}
