package wire

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/projection"
)

// Head is a snapshot without its versions: what a head blob holds.
type Head struct {
	Start   time.Time
	Current uint64
	Links   []string // sorted
	SubPath bool     // stable nodes (fusefs.Snapshot.SubPath)
}

// HeadOf is s's head.
func HeadOf(s *fusefs.Snapshot) Head {
	return Head{Start: s.Start, Current: s.Current, Links: slices.Clone(s.Links), SubPath: s.SubPath}
}

// Link adds the first element of a file path to the sorted link names.
func (h *Head) Link(file string) {
	top, _, _ := strings.Cut(path.Clean(file), "/")
	if i, found := slices.BinarySearch(h.Links, top); !found {
		h.Links = slices.Insert(h.Links, i, top)
	}
}

// Encode is the head blob.
func (h *Head) Encode() []byte {
	var b []byte
	b = appendVarint(b, 1, uint64(h.Start.UnixNano()))
	b = appendVarint(b, 2, h.Current)
	for _, l := range h.Links {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, l)
	}
	if h.SubPath {
		b = appendVarint(b, 4, 1)
	}
	return b
}

// DecodeHead parses a head blob.
func DecodeHead(b []byte) (Head, error) {
	var h Head
	seen := false
	err := fields(b, func(n protowire.Number, _ protowire.Type, v []byte, x uint64) error {
		switch n {
		case 1:
			h.Start = time.Unix(0, int64(x))
		case 2:
			h.Current, seen = x, true
		case 3:
			h.Links = append(h.Links, string(v))
		case 4:
			h.SubPath = x == 1
		}
		return nil
	}, map[protowire.Number]protowire.Type{1: protowire.VarintType, 2: protowire.VarintType, 3: protowire.BytesType, 4: protowire.VarintType})
	if err == nil && !seen {
		err = fmt.Errorf("no current version")
	}
	if err != nil {
		return Head{}, fmt.Errorf("head: %w", err)
	}
	slices.Sort(h.Links)
	h.Links = slices.Compact(h.Links)
	return h, nil
}

// EncodeVersion is the version blob of v. It holds v's secret bytes:
// wipe it once sent.
func EncodeVersion(v *fusefs.VersionState) []byte {
	room := 64 + len(v.Name) // one buffer: see Message.room
	for p, f := range v.Files {
		room += 48 + len(p) + len(f.Data)
	}
	for p := range v.Changed {
		room += 32 + len(p)
	}
	for p := range v.Sources {
		room += 16 + len(p)
	}
	b := make([]byte, 0, room)
	fb := make([]byte, 0, 256)
	b = appendVarint(b, 1, v.Gen)
	b = appendBytes(b, 2, []byte(v.Name))
	b = appendVarint(b, 3, uint64(v.Created.UnixNano()))
	names := make([]string, 0, len(v.Files))
	for p := range v.Files {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		f := v.Files[p]
		if need := len(p) + len(f.Data) + 32; cap(fb) < need {
			clear(fb[:cap(fb)])
			fb = make([]byte, 0, need)
		}
		fb = appendBytes(fb[:0], 1, []byte(p))
		fb = appendVarint(fb, 2, uint64(f.Mode))
		fb = protowire.AppendTag(fb, 3, protowire.BytesType)
		fb = protowire.AppendBytes(fb, f.Data)
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, fb)
	}
	clear(fb[:cap(fb)])
	var cb []byte // no secret in it
	for _, p := range slices.Sorted(maps.Keys(v.Changed)) {
		cb = appendBytes(cb[:0], 1, []byte(p))
		cb = appendVarint(cb, 2, uint64(v.Changed[p].UnixNano()))
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, cb)
	}
	for _, p := range slices.Sorted(maps.Keys(v.Sources)) {
		cb = appendBytes(cb[:0], 1, []byte(p))
		cb = appendVarint(cb, 2, uint64(v.Sources[p]))
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendBytes(b, cb)
	}
	return b
}

// DecodeVersion parses a version blob; the file bytes are copied.
func DecodeVersion(b []byte) (fusefs.VersionState, error) {
	v := fusefs.VersionState{Files: map[string]projection.File{}}
	seen := false
	err := fields(b, func(n protowire.Number, _ protowire.Type, val []byte, x uint64) error {
		switch n {
		case 1:
			v.Gen, seen = x, true
		case 2:
			v.Name = string(val)
		case 3:
			v.Created = time.Unix(0, int64(x))
		case 4:
			p, f, err := decodeFile(val)
			if err != nil {
				return err
			}
			if _, dup := v.Files[p]; dup {
				return fmt.Errorf("file %d appears twice", len(v.Files))
			}
			v.Files[p] = f
		case 5:
			p, t, err := decodeChanged(val)
			if err != nil {
				return err
			}
			if v.Changed == nil {
				v.Changed = map[string]time.Time{}
			}
			v.Changed[p] = t
		case 6:
			p, i, err := decodeSource(val)
			if err != nil {
				return err
			}
			if v.Sources == nil {
				v.Sources = map[string]int{}
			}
			v.Sources[p] = i
		}
		return nil
	}, map[protowire.Number]protowire.Type{1: protowire.VarintType, 2: protowire.BytesType,
		3: protowire.VarintType, 4: protowire.BytesType, 5: protowire.BytesType, 6: protowire.BytesType})
	if err == nil && !seen {
		err = fmt.Errorf("no generation")
	}
	if err != nil {
		v.Wipe()
		return fusefs.VersionState{}, fmt.Errorf("version: %w", err)
	}
	return v, nil
}

func decodeFile(b []byte) (string, projection.File, error) {
	var p string
	var f projection.File
	err := fields(b, func(n protowire.Number, _ protowire.Type, v []byte, x uint64) error {
		switch n {
		case 1:
			p = string(v)
		case 2:
			if x > 0o7777 {
				return fmt.Errorf("file mode out of range")
			}
			f.Mode = uint32(x)
		case 3:
			f.Data = clone(v)
		}
		return nil
	}, map[protowire.Number]protowire.Type{1: protowire.BytesType, 2: protowire.VarintType, 3: protowire.BytesType})
	if err == nil && p == "" {
		err = fmt.Errorf("file without a path")
	}
	if err != nil {
		clear(f.Data)
		return "", projection.File{}, fmt.Errorf("file: %w", err)
	}
	if f.Data == nil {
		f.Data = []byte{}
	}
	return p, f, nil
}

// decodeSource parses which source gave a file (version field 6).
func decodeSource(b []byte) (string, int, error) {
	p, i, err := decodePathNumber(b)
	if err == nil && (p == "" || i > 1<<16) {
		err = fmt.Errorf("no path, or index %d out of range", i)
	}
	if err != nil {
		return "", 0, fmt.Errorf("source: %w", err)
	}
	return p, int(i), nil
}

// decodeChanged parses a path's change time (version field 5).
func decodeChanged(b []byte) (string, time.Time, error) {
	p, x, err := decodePathNumber(b)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("change time: %w", err)
	}
	return p, time.Unix(0, int64(x)), nil
}

// decodePathNumber parses the message of fields 5 and 6: 1 path (bytes),
// 2 a number (varint).
func decodePathNumber(b []byte) (string, uint64, error) {
	var p string
	var num uint64
	err := fields(b, func(n protowire.Number, _ protowire.Type, v []byte, x uint64) error {
		switch n {
		case 1:
			p = string(v)
		case 2:
			num = x
		}
		return nil
	}, map[protowire.Number]protowire.Type{1: protowire.BytesType, 2: protowire.VarintType})
	return p, num, err
}

// Snapshot rebuilds a snapshot from a head and its version blobs.
func Snapshot(head []byte, versions [][]byte) (fusefs.Snapshot, error) {
	h, err := DecodeHead(head)
	if err != nil {
		return fusefs.Snapshot{}, err
	}
	s := fusefs.Snapshot{Start: h.Start, Current: h.Current, Links: h.Links, SubPath: h.SubPath}
	for _, b := range versions {
		v, err := DecodeVersion(b)
		if err != nil {
			s.Wipe()
			return fusefs.Snapshot{}, err
		}
		s.Versions = append(s.Versions, v)
	}
	slices.SortFunc(s.Versions, func(a, b fusefs.VersionState) int {
		return cmp.Compare(a.Gen, b.Gen)
	})
	return s, nil
}

// Notices converts fusefs notices for the wire, and back.
func Notices(ns []fusefs.Notice) []Notice {
	out := make([]Notice, len(ns))
	for i, n := range ns {
		out[i] = Notice{Op: uint8(n.Op), Parent: n.Parent, Child: n.Child, Name: n.Name}
	}
	return out
}

// FuseNotices converts wire notices to fusefs notices.
func FuseNotices(ns []Notice) []fusefs.Notice {
	out := make([]fusefs.Notice, len(ns))
	for i, n := range ns {
		out[i] = fusefs.Notice{Op: fusefs.NoticeOp(n.Op), Parent: n.Parent, Child: n.Child, Name: n.Name}
	}
	return out
}
