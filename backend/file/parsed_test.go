package file

import (
	"path/filepath"
	"testing"
	"time"
)

// A settled manifest's parse is remembered under its stamp where the
// system gives one (Unix: inode and ctime), never where it does not
// (Windows); a rewrite of the same size in place or by rename is read
// again either way.
func TestParseRememberedByStamp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db.yaml")
	write(t, dir, "db.yaml", manifest("db", "one"))
	time.Sleep(60 * time.Millisecond) // older than the settle window of readDir
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	password := func() string {
		t.Helper()
		s, err := b.readDir().lookup(ref)
		if err != nil {
			t.Fatal(err)
		}
		return string(s.Data["password"])
	}
	if got := password(); got != "one" {
		t.Fatalf("password %q, want one", got)
	}
	_, st, _, err := statManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	_, remembered := b.parsed.get(path, st.stamp)
	if want := st.stamp.ino != 0; remembered != want {
		t.Errorf("parse remembered: %v, want %v (stamp %+v)", remembered, want, st.stamp)
	}
	write(t, dir, "db.yaml", manifest("db", "two")) // same size, in place
	if got := password(); got != "two" {
		t.Errorf("after an in-place rewrite: password %q, want two", got)
	}
	time.Sleep(60 * time.Millisecond)
	password() // remembered again
	replace(t, dir, "db.yaml", manifest("db", "six"))
	if got := password(); got != "six" {
		t.Errorf("after a rename over it: password %q, want six", got)
	}
}
