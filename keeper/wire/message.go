package wire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Op is a message type.
type Op uint8

// Message types of protocol version 1 (see the package doc).
const (
	OpHello Op = iota + 1
	OpWelcome
	OpError
	OpRegister
	OpPut
	OpDrop
	OpForget
	OpList
	OpEntry
	OpVersion
	OpEnd
	OpAck
	OpNotify
	// Protocol version 2.
	OpJournal
	OpStopping
	opLast = OpStopping
)

// Magic opens every Hello and Welcome.
const Magic = "secretfs-keeper"

// Versions are the protocol versions this release speaks, oldest first.
var Versions = []uint32{1, 2}

// Release names this build in Hello and Welcome (informational; the
// command sets it from its version).
var Release = "dev"

// Code says why the keeper answered Error.
type Code uint32

const (
	CodeRefused     Code = 1 // peer check failed: do not retry this keeper
	CodeUnsupported Code = 2 // no protocol version in common
	CodeFailed      Code = 3 // this request failed; the connection goes on
)

// Message is any message; which fields a type uses is in the package doc.
type Message struct {
	Op       Op
	ID       string
	Meta     []byte
	Head     []byte
	Gen      uint64
	Blob     []byte
	Notices  []Notice
	Kind     string
	Versions []uint32
	Version  uint32
	Software string
	Err      string
	Code     Code
	Magic    string
	Count    uint64
	Journal  bool
}

// Notice is one kernel notification (fusefs.Notice, as it travels).
type Notice struct {
	Op     uint8
	Parent uint64
	Child  uint64
	Name   string
}

const (
	fID protowire.Number = iota + 1
	fMeta
	fHead
	fGen
	fBlob
	fNotice
	fKind
	fVersions
	fVersion
	fSoftware
	fError
	fCode
	fCount   protowire.Number = 13
	fMagic   protowire.Number = 15
	fJournal protowire.Number = 16
)

// need lists the fields a message type must carry.
var need = map[Op][]protowire.Number{
	OpHello:    {fMagic, fVersions, fKind},
	OpWelcome:  {fMagic, fVersion},
	OpError:    {fError, fCode},
	OpRegister: {fID},
	OpPut:      {fID, fGen, fBlob},
	OpDrop:     {fID, fGen},
	OpForget:   {fID},
	OpEntry:    {fID},
	OpJournal:  {fID},
	OpVersion:  {fGen, fBlob},
	OpNotify:   {fID},
}

// room bounds the size of m's body, so one buffer holds it: a buffer
// outgrown by append would leave a copy of secret bytes behind.
func (m *Message) room() int {
	n := 128 + len(m.ID) + len(m.Meta) + len(m.Head) + len(m.Blob) + len(m.Kind) +
		len(m.Software) + len(m.Err) + len(m.Magic) + 11*len(m.Versions)
	for _, nt := range m.Notices {
		n += 40 + len(nt.Name)
	}
	return n
}

// Encode appends m's body to b.
func (m *Message) Encode(b []byte) []byte {
	b = appendBytes(b, fID, []byte(m.ID))
	b = appendBytes(b, fMeta, m.Meta)
	b = appendBytes(b, fHead, m.Head)
	if m.Gen != 0 || m.Op == OpPut || m.Op == OpDrop || m.Op == OpVersion {
		b = appendVarint(b, fGen, m.Gen)
	}
	b = appendBytes(b, fBlob, m.Blob)
	for _, n := range m.Notices {
		var nb []byte
		nb = appendVarint(nb, 1, uint64(n.Op))
		nb = appendVarint(nb, 2, n.Parent)
		nb = appendVarint(nb, 3, n.Child)
		nb = appendBytes(nb, 4, []byte(n.Name))
		b = protowire.AppendTag(b, fNotice, protowire.BytesType)
		b = protowire.AppendBytes(b, nb)
	}
	b = appendBytes(b, fKind, []byte(m.Kind))
	for _, v := range m.Versions {
		b = appendVarint(b, fVersions, uint64(v))
	}
	if m.Version != 0 {
		b = appendVarint(b, fVersion, uint64(m.Version))
	}
	b = appendBytes(b, fSoftware, []byte(m.Software))
	b = appendBytes(b, fError, []byte(m.Err))
	if m.Code != 0 {
		b = appendVarint(b, fCode, uint64(m.Code))
	}
	b = appendBytes(b, fMagic, []byte(m.Magic))
	if m.Count != 0 {
		b = appendVarint(b, fCount, m.Count)
	}
	if m.Journal {
		b = appendVarint(b, fJournal, 1)
	}
	return b
}

func appendBytes(b []byte, n protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarint(b []byte, n protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// Decode parses a body of type op. Byte fields are copied out of body, so
// the caller may wipe it. Errors name field numbers and offsets, never a
// value.
func Decode(op Op, body []byte) (*Message, error) {
	if op == 0 || op > opLast {
		return nil, fmt.Errorf("unknown message type %d", op)
	}
	m := &Message{Op: op}
	seen := map[protowire.Number]bool{}
	err := fields(body, func(n protowire.Number, t protowire.Type, v []byte, x uint64) error {
		// An empty string is the same as none: Encode leaves it out.
		seen[n] = seen[n] || t != protowire.BytesType || len(v) > 0
		switch n {
		case fID:
			m.ID = string(v)
		case fMeta:
			m.Meta = clone(v)
		case fHead:
			m.Head = clone(v)
		case fGen:
			m.Gen = x
		case fBlob:
			m.Blob = clone(v)
		case fNotice:
			nt, err := decodeNotice(v)
			if err != nil {
				return err
			}
			m.Notices = append(m.Notices, nt)
		case fKind:
			m.Kind = string(v)
		case fVersions:
			if x > 1<<32-1 {
				return fmt.Errorf("field %d out of range", n)
			}
			m.Versions = append(m.Versions, uint32(x))
		case fVersion:
			if x > 1<<32-1 {
				return fmt.Errorf("field %d out of range", n)
			}
			m.Version = uint32(x)
		case fSoftware:
			m.Software = string(v)
		case fError:
			m.Err = string(v)
		case fCode:
			m.Code = Code(min(x, 1<<32-1))
		case fMagic:
			m.Magic = string(v)
		case fCount:
			m.Count = x
		case fJournal:
			m.Journal = x != 0
		}
		return nil
	}, kinds)
	if err != nil {
		return nil, fmt.Errorf("message type %d: %w", op, err)
	}
	for _, n := range need[op] {
		if !seen[n] {
			return nil, fmt.Errorf("message type %d lacks field %d", op, n)
		}
	}
	// A record's versions are in its head and blobs (version 1) or in its
	// journal (version 2): one of the two.
	if (op == OpRegister || op == OpEntry) && !seen[fHead] && !m.Journal {
		return nil, fmt.Errorf("message type %d lacks field %d", op, fHead)
	}
	if (op == OpHello || op == OpWelcome) && m.Magic != Magic {
		return nil, fmt.Errorf("message type %d: not a secretfs keeper peer", op)
	}
	return m, nil
}

// kinds are the wire types of the message fields this version knows.
var kinds = map[protowire.Number]protowire.Type{
	fID: protowire.BytesType, fMeta: protowire.BytesType, fHead: protowire.BytesType,
	fGen: protowire.VarintType, fBlob: protowire.BytesType, fNotice: protowire.BytesType,
	fKind: protowire.BytesType, fVersions: protowire.VarintType, fVersion: protowire.VarintType,
	fSoftware: protowire.BytesType, fError: protowire.BytesType, fCode: protowire.VarintType,
	fMagic: protowire.BytesType, fCount: protowire.VarintType, fJournal: protowire.VarintType,
}

func decodeNotice(b []byte) (Notice, error) {
	var n Notice
	err := fields(b, func(f protowire.Number, _ protowire.Type, v []byte, x uint64) error {
		switch f {
		case 1:
			if x > 255 {
				return fmt.Errorf("notice field %d out of range", f)
			}
			n.Op = uint8(x)
		case 2:
			n.Parent = x
		case 3:
			n.Child = x
		case 4:
			n.Name = string(v)
		}
		return nil
	}, map[protowire.Number]protowire.Type{1: protowire.VarintType, 2: protowire.VarintType,
		3: protowire.VarintType, 4: protowire.BytesType})
	if err != nil {
		return n, fmt.Errorf("notice: %w", err)
	}
	return n, nil
}

// fields walks b, calling f with each field known in types (v for bytes,
// x for varints) and skipping the others (rule 4 of the package doc).
func fields(b []byte, f func(protowire.Number, protowire.Type, []byte, uint64) error, types map[protowire.Number]protowire.Type) error {
	for off := 0; off < len(b); {
		n, t, l := protowire.ConsumeTag(b[off:])
		if l < 0 {
			return fmt.Errorf("bad tag at offset %d", off)
		}
		off += l
		want, known := types[n]
		if !known {
			l = protowire.ConsumeFieldValue(n, t, b[off:])
			if l < 0 {
				return fmt.Errorf("bad field %d at offset %d", n, off)
			}
			off += l
			continue
		}
		if t != want {
			return fmt.Errorf("field %d has wire type %d, want %d", n, t, want)
		}
		var v []byte
		var x uint64
		if t == protowire.BytesType {
			v, l = protowire.ConsumeBytes(b[off:])
		} else {
			x, l = protowire.ConsumeVarint(b[off:])
		}
		if l < 0 {
			return fmt.Errorf("bad field %d at offset %d", n, off)
		}
		off += l
		if err := f(n, t, v, x); err != nil {
			return err
		}
	}
	return nil
}

func clone(v []byte) []byte { return append([]byte(nil), v...) }

// Choose returns the highest version both lists hold, or 0.
func Choose(ours, theirs []uint32) uint32 {
	best := uint32(0)
	for _, a := range ours {
		for _, b := range theirs {
			if a == b && a > best {
				best = a
			}
		}
	}
	return best
}
