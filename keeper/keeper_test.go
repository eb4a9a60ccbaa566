package keeper

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/keeper/wire"
	"github.com/secretfs/secretfs/projection"
)

func startKeeper(t *testing.T, opts ...func(*Keeper)) (*Keeper, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "keeper.sock")
	k, err := startKeeperAt(t, sock, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k, sock
}

func dial(t *testing.T, sock, kind string) *Client {
	t.Helper()
	c, err := Dial(sock, kind)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// anFD is a descriptor to hold in place of a /dev/fuse one: the keeper
// only dups it and polls it.
func anFD(t *testing.T) int {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return int(r.Fd())
}

func snapshot(gens int, size int) fusefs.Snapshot {
	s := fusefs.Snapshot{Start: time.Unix(100, 5), Links: []string{"a", "dir"}}
	for g := 1; g <= gens; g++ {
		s.Versions = append(s.Versions, fusefs.VersionState{Gen: uint64(g), Name: fmt.Sprintf("..v%d", g),
			Created: time.Unix(200, int64(g)), Files: map[string]projection.File{
				"a":     {Mode: 0o644, Data: bytes.Repeat([]byte{byte(g)}, size)},
				"dir/b": {Mode: 0o400, Data: []byte{}},
			}})
		s.Current = uint64(g)
	}
	return s
}

// register has c's keeper hold a record of s under id (in c's protocol
// version), synchronously, and returns its journal.
func register(t *testing.T, c *Client, id string, s fusefs.Snapshot) fusefs.Journal {
	t.Helper()
	j, err := linked(c).Journal(id, []byte("meta-"+id), nil)
	if err != nil {
		t.Fatal(err)
	}
	fj, err := j.Attach(anFD(t))(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.register(c, 1); err != nil {
		t.Fatal(err)
	}
	return fj
}

func list(t *testing.T, c *Client) map[string]Entry {
	t.Helper()
	es, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Entry{}
	for _, e := range es {
		if e.Err != nil {
			t.Fatal(e.Err)
		}
		os.NewFile(uintptr(e.FD), "held").Close()
		if e.Ledger != nil {
			e.Ledger.Close()
		}
		out[e.ID] = e
	}
	return out
}

func TestKeeperHoldsRecords(t *testing.T) {
	_, sock := startKeeper(t)
	c := dial(t, sock, KindCSI)
	s := snapshot(2, 10)
	j := register(t, c, "/t/1", s)
	next := fusefs.VersionState{Gen: 3, Name: "..v3", Created: time.Unix(300, 0),
		Files: map[string]projection.File{"new/x": {Mode: 0o600, Data: []byte("x")}}}
	if err := j.PutVersion(next); err != nil {
		t.Fatal(err)
	}
	j.DropVersion(1)
	if err := j.Notify([]fusefs.Notice{{Op: fusefs.NoticeEntry, Parent: 1, Name: "a"}}); err != nil {
		t.Fatal(err)
	}

	got := list(t, dial(t, sock, KindCSI))["/t/1"]
	want := fusefs.Snapshot{Start: s.Start, Current: 3, Links: []string{"a", "dir", "new"},
		Versions: []fusefs.VersionState{s.Versions[1], next}}
	if string(got.Meta) != "meta-/t/1" || !reflect.DeepEqual(got.Snap, want) {
		t.Errorf("held record:\n got %+v\nwant %+v", got.Snap, want)
	}
	if err := c.Forget("/t/1"); err != nil {
		t.Fatal(err)
	}
	if n := len(list(t, c)); n != 0 {
		t.Errorf("%d records after Forget", n)
	}
}

func TestKeeperKinds(t *testing.T) {
	k, sock := startKeeper(t)
	csi, mnt := dial(t, sock, KindCSI), dial(t, sock, KindMount)
	register(t, csi, "/same", snapshot(1, 1))
	register(t, mnt, "/same", snapshot(1, 2))
	register(t, mnt, "/home/m", snapshot(1, 3))
	if got := list(t, dial(t, sock, KindCSI)); len(got) != 1 || len(got["/same"].Snap.Versions[0].Files["a"].Data) != 1 {
		t.Errorf("csi sees %d records, want its own one", len(got))
	}
	if got := list(t, dial(t, sock, KindMount)); len(got) != 2 || len(got["/same"].Snap.Versions[0].Files["a"].Data) != 2 {
		t.Errorf("mount sees %d records, want its own two", len(got))
	}
	if err := csi.Forget("/home/m"); err != nil || k.Held() != 3 {
		t.Errorf("a csi Forget of a mount record: err %v, %d held, want 3", err, k.Held())
	}
}

func TestKeeperVersionMismatch(t *testing.T) {
	k, sock := startKeeper(t)
	register(t, dial(t, sock, KindCSI), "/t/1", snapshot(1, 1))
	speaks = []uint32{99}
	_, err := Dial(sock, KindCSI)
	speaks = wire.Versions
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "no common keeper protocol version: keeper speaks [1 2], client [99]") {
		t.Fatalf("a client of protocol 99: %v", err)
	}
	if k.Held() != 1 || len(list(t, dial(t, sock, KindCSI))) != 1 {
		t.Errorf("the record is gone after a refused client")
	}
	// The highest version both speak is chosen.
	speaks = []uint32{1}
	c := dial(t, sock, KindCSI)
	speaks = wire.Versions
	if c.Version() != 1 {
		t.Errorf("client of [1], keeper of [1 2]: version %d, want 1", c.Version())
	}
	if c := dial(t, sock, KindCSI); c.Version() != 2 {
		t.Errorf("client of [1 2], keeper of [1 2]: version %d, want 2", c.Version())
	}
}

// rawHello connects and says hello by hand, then leaves the connection to
// the test.
func rawHello(t *testing.T, sock string) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := wire.Write(c, &wire.Message{Op: wire.OpHello, Magic: wire.Magic, Versions: wire.Versions, Kind: KindCSI}, -1); err != nil {
		t.Fatal(err)
	}
	if m, _, err := wire.ReadUnix(c, time.Second); err != nil || m.Op != wire.OpWelcome {
		t.Fatalf("welcome: %v", err)
	}
	return c
}

// dropped waits for the keeper to close c, reading whatever it sent.
func dropped(c *net.UnixConn, within time.Duration) error {
	c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("still connected after %v", within)
	}
	return nil
}

func TestKeeperStalledClients(t *testing.T) {
	k, sock := startKeeper(t, func(k *Keeper) { k.IOTimeout, k.HelloTimeout = 2*time.Second, 2*time.Second })
	speaks = []uint32{1} // version 1 records: their blobs travel in a List
	c := dial(t, sock, KindCSI)
	speaks = wire.Versions
	for i := range 30 { // a List reply of 30 MiB: far over the socket's buffer
		register(t, c, fmt.Sprintf("/t/%d", i), snapshot(1, 1<<20))
	}
	// One client asks for the list and stops reading; one connects and
	// says nothing; one announces a 100 MiB message.
	stuck := rawHello(t, sock)
	if err := wire.Write(stuck, &wire.Message{Op: wire.OpList}, -1); err != nil {
		t.Fatal(err)
	}
	silent, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	huge := rawHello(t, sock)
	var hdr [wire.HeaderSize]byte
	binary.BigEndian.PutUint32(hdr[:], 100<<20)
	hdr[4] = byte(wire.OpPut)
	huge.Write(hdr[:])
	time.Sleep(100 * time.Millisecond) // the stuck reply fills its buffer

	t0 := time.Now()
	other := dial(t, sock, KindMount)
	register(t, other, "/home/m", snapshot(1, 1))
	if n := len(list(t, other)); n != 1 {
		t.Errorf("second client lists %d records, want 1", n)
	}
	if err := c.Forget("/t/0"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("a second client took %v beside stalled ones, want under 1s", d)
	}
	if err := dropped(huge, time.Second); err != nil {
		t.Errorf("oversized message: %v", err)
	}
	if err := dropped(silent, 3*time.Second); err != nil {
		t.Errorf("silent client: %v", err)
	}
	// Reading again would let the keeper go on: first wait out its timeout.
	time.Sleep(k.IOTimeout + time.Second)
	stuck.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := io.Copy(io.Discard, stuck)
	if err != nil || n >= 30<<20 {
		t.Errorf("stuck client: read %d bytes (%v); want the keeper to hang up before the whole list", n, err)
	}
}

func TestKeeperRefusesUnversioned(t *testing.T) {
	_, sock := startKeeper(t)
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// What a release before protocol 1 sent first: a length, then gob.
	c.Write([]byte{0, 0, 0, 12, 0x0b, 0xff, 0x81, 0x03, 1, 1, 7, 'm', 'e', 's', 's', 'a', 'g'})
	m, err := wire.Read(c)
	if err != nil || m.Op != wire.OpError || m.Code != wire.CodeUnsupported {
		t.Fatalf("answer to an unversioned client: %+v, %v", m, err)
	}
}

func TestKeeperBoundsConnections(t *testing.T) {
	_, sock := startKeeper(t, func(k *Keeper) { k.MaxConns = 2 })
	a, b := dial(t, sock, KindCSI), dial(t, sock, KindMount)
	_, err := Dial(sock, KindCSI)
	var refused *RefusedError
	if err == nil || errors.As(err, &refused) || !strings.Contains(err.Error(), "limit of 2 connections") {
		t.Fatalf("a third connection with a limit of 2: %v (want a retryable error)", err)
	}
	a.Close()
	time.Sleep(50 * time.Millisecond)
	c := dial(t, sock, KindCSI) // a slot is free again
	if _, err := c.List(); err != nil {
		t.Error(err)
	}
	if _, err := b.List(); err != nil {
		t.Error(err)
	}
}

// A server killed while it registers again (as each takeover does) leaves
// the record it was replacing: the next server still finds every version.
func TestKeeperRegisterCutShort(t *testing.T) {
	k, sock := startKeeper(t)
	register(t, dial(t, sock, KindMount), "/m", snapshot(3, 4))
	c := rawHello(t, sock)
	if err := wire.Write(c, &wire.Message{Op: wire.OpRegister, ID: "/m", Head: []byte{0x10, 9}, Count: 2}, anFD(t)); err != nil {
		t.Fatal(err)
	}
	v := snapshot(9, 1).Versions[8]
	if err := wire.Write(c, &wire.Message{Op: wire.OpPut, ID: "/m", Gen: 9, Blob: wire.EncodeVersion(&v)}, -1); err != nil {
		t.Fatal(err)
	}
	c.Close() // before the second Put
	time.Sleep(50 * time.Millisecond)
	got := list(t, dial(t, sock, KindMount))["/m"]
	if got.Snap.Current != 3 || len(got.Snap.Versions) != 3 || k.Held() != 1 {
		t.Errorf("after a cut-short registration: current %d, %d versions; want the old record (3, 3)", got.Snap.Current, len(got.Snap.Versions))
	}
	// Completed, it replaces the old record.
	register(t, dial(t, sock, KindMount), "/m", snapshot(2, 1))
	if got := list(t, dial(t, sock, KindMount))["/m"]; got.Snap.Current != 2 || len(got.Snap.Versions) != 2 {
		t.Errorf("after a full registration: current %d, %d versions; want 2, 2", got.Snap.Current, len(got.Snap.Versions))
	}
}
