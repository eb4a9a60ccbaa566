package fusefs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"

	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secmem"
)

// TestVolumesShareBytes: volumes showing the same Secret version share one
// block of secret memory, whatever their paths, modes and fsGroup; the
// block goes when the last version using it is wiped.
func TestVolumesShareBytes(t *testing.T) {
	big := bytes.Repeat([]byte("s3cr3t!"), 512<<10/7)
	blocks0, mapped0, _ := secmem.Stats()
	g := int64(1001)
	var all []*FS
	for i := range 100 {
		p := &projection.Payload{Files: map[string]projection.File{
			"key": {Mode: 0o644, Data: big}, "user": {Mode: 0o644, Data: []byte("admin")}}}
		opts := Options{}
		if i%2 == 1 { // other paths, modes and group: the same bytes
			p = &projection.Payload{Files: map[string]projection.File{
				"a/b/key": {Mode: 0o400 | 0o440, Data: bytes.Clone(big)}, "u": {Mode: 0o600, Data: []byte("admin")}}}
			opts.FSGroup = &g
		}
		fs, err := New(opts, p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, fs)
	}
	blocks, mapped, _ := secmem.Stats()
	if blocks-blocks0 != 1 {
		t.Errorf("100 volumes of one Secret hold %d blocks, want 1", blocks-blocks0)
	}
	if want := int64(len(big)+5+os.Getpagesize()-1) / int64(os.Getpagesize()) * int64(os.Getpagesize()); mapped-mapped0 != want {
		t.Errorf("mapped %d bytes, want %d", mapped-mapped0, want)
	}
	if got := all[1].cur.nodes[all[1].cur.byPath["a/b/key"]].data; !bytes.Equal(got, big) {
		t.Error("shared file reads wrong bytes")
	}
	// A new version of the Secret is a new block; the old one stays while
	// any volume still shows it.
	if err := all[0].Update(&projection.Payload{Files: map[string]projection.File{"key": {Mode: 0o644, Data: []byte("rotated")}}}); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := secmem.Stats(); b-blocks0 != 2 {
		t.Errorf("after one volume switched: %d blocks, want 2", b-blocks0)
	}
	for _, fs := range all {
		fs.wipeAll()
	}
	if b, m, _ := secmem.Stats(); b != blocks0 || m != mapped0 {
		t.Errorf("after every volume went: %d blocks / %d bytes, want %d / %d", b, m, blocks0, mapped0)
	}
}

// TestSameValueTwice: two files with one value hold it once; an empty
// file and an empty volume hold nothing.
func TestSameValueTwice(t *testing.T) {
	blocks0, _, _ := secmem.Stats()
	fs, err := New(Options{}, payload(map[string]string{"a": "same", "b": "same", "c": "other", "e": ""}, 0o644))
	if err != nil {
		t.Fatal(err)
	}
	v := fs.cur
	if v.mem == nil || string(v.mem.Bytes()) != "othersame" {
		t.Fatalf("block holds %q, want the distinct values once", v.mem.Bytes())
	}
	for path, want := range map[string]string{"a": "same", "b": "same", "c": "other", "e": ""} {
		if got := string(v.nodes[v.byPath[path]].data); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	fs.wipeAll()
	empty, err := New(Options{}, &projection.Payload{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _, _ := secmem.Stats(); b != blocks0 || empty.cur.mem != nil {
		t.Errorf("blocks %d, want %d", b, blocks0)
	}
}

// TestPrivateUnlessAllowOther: root's mount lacks allow_other, so another
// user cannot open even a 0644 file; AllowOther and FSGroup add it.
func TestPrivateUnlessAllowOther(t *testing.T) {
	g := int64(65534)
	for _, tc := range []struct {
		name  string
		opts  Options
		other bool
	}{{"default", Options{}, false}, {"allow-other", Options{AllowOther: true}, true}, {"fs-group", Options{FSGroup: &g}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			_, dir := mount(t, tc.opts, payload(map[string]string{"k": "v"}, 0o644))
			infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
			if err != nil || len(infos) != 1 {
				t.Fatalf("mountinfo for %s: %v, %d entries", dir, err, len(infos))
			}
			if has := strings.Contains(","+infos[0].VFSOptions+",", ",allow_other,"); has != tc.other {
				t.Errorf("super options %q: allow_other %v, want %v", infos[0].VFSOptions, has, tc.other)
			}
			err = asUser(65534, 65534, nil, filepath.Join(dir, "k"))
			if tc.other && err != nil {
				t.Errorf("another user cannot read with allow_other: %v", err)
			}
			if !tc.other && (err == nil || !strings.Contains(err.Error(), "Permission denied")) {
				t.Errorf("another user reading a private mount: %v, want permission denied", err)
			}
		})
	}
}

// TestVersionStateLock: a state that owns its bytes (as the keeper's,
// decoded from the wire) moves them into shared secret memory, zeroes
// the copies, and Wipe lets the block go.
func TestVersionStateLock(t *testing.T) {
	blocks0, _, _ := secmem.Stats()
	heap := []byte("value")
	s := Snapshot{Versions: []VersionState{{Gen: 1, Files: map[string]projection.File{"k": {Mode: 0o400, Data: heap}}}}}
	if err := s.Lock(); err != nil {
		t.Fatal(err)
	}
	if string(heap) != "\x00\x00\x00\x00\x00" {
		t.Errorf("heap copy not zeroed: %q", heap)
	}
	if f := s.Versions[0].Files["k"]; string(f.Data) != "value" || f.Mode != 0o400 {
		t.Errorf("locked file = %q %o", f.Data, f.Mode)
	}
	if b, _, _ := secmem.Stats(); b != blocks0+1 {
		t.Errorf("blocks %d, want %d", b, blocks0+1)
	}
	s.Wipe()
	if b, _, _ := secmem.Stats(); b != blocks0 {
		t.Errorf("after Wipe: blocks %d, want %d", b, blocks0)
	}
}
