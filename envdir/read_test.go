package envdir

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/secretfs/secretfs/sanity/atomicwriter"
)

func names(v Vars) []string {
	var out []string
	for _, e := range v.Vars {
		out = append(out, e.Name+"="+string(e.Value))
	}
	return out
}

// What envFrom would make of the volume: valid names only; dotfiles,
// folders and ..entries left out; a bad name or a NUL value skipped and
// named.
func TestReadLayout(t *testing.T) {
	dir := t.TempDir()
	err := atomicwriter.Write(dir, map[string][]byte{
		"USER": []byte("admin"), "pass_2": []byte("p w\n"), "1bad": []byte("x"), "tls.crt": []byte("c"),
		".hidden": []byte("h"), "group/NESTED": []byte("n"), "NUL": []byte("a\x00b"),
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(v), []string{"USER=admin", "pass_2=p w\n"}; !slices.Equal(got, want) {
		t.Errorf("vars %q, want %q", got, want)
	}
	if want := []string{"1bad", "NUL", "tls.crt"}; !slices.Equal(v.Skipped, want) {
		t.Errorf("skipped %q, want %q", v.Skipped, want)
	}
	if v.Version == "" {
		t.Error("no version read from ..data")
	}
}

// A plain folder (no ..data) is read as it is.
func TestReadPlainFolder(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "A"), []byte("1"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	v, err := Read(dir)
	if err != nil || !slices.Equal(names(v), []string{"A=1"}) || v.Version != "" {
		t.Errorf("got %q, version %q, err %v", names(v), v.Version, err)
	}
	if _, err := Read(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing folder read without error")
	}
}

// A file over MaxFile is an error naming it, never read whole.
func TestReadTooBig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "BIG"), make([]byte, MaxFile+1), 0o644)
	if _, err := Read(dir); err == nil || err.Error() != fmt.Sprintf("BIG is over %d bytes", MaxFile) {
		t.Errorf("err %v", err)
	}
}

// Reads while kubelet's writer switches versions as fast as it can: every
// read is of one version (A and B always equal), never an error, though
// the writer removes each old folder right after the switch.
func TestReadConsistentUnderSwitches(t *testing.T) {
	dir := t.TempDir()
	gen := func(i int) map[string][]byte {
		v := []byte(fmt.Sprint(i))
		return map[string][]byte{"A": v, "B": v, "C": v}
	}
	if err := atomicwriter.Write(dir, gen(0)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := atomicwriter.Write(dir, gen(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)
	seen := map[string]bool{}
	for range 2000 {
		v, err := Read(dir)
		if err != nil {
			t.Fatalf("read during switches: %v", err)
		}
		if len(v.Vars) != 3 || string(v.Vars[0].Value) != string(v.Vars[1].Value) || string(v.Vars[1].Value) != string(v.Vars[2].Value) {
			t.Fatalf("a read mixed versions: %q", names(v))
		}
		seen[string(v.Vars[0].Value)] = true
	}
	if len(seen) < 2 {
		t.Errorf("the reads saw %d versions: the writer did not switch under them", len(seen))
	}
}
