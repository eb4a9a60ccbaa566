package projection

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/secretfs/secretfs/secret"
)

func part(name string, files ...string) Part {
	p := &Payload{Files: map[string]File{}}
	for _, f := range files {
		p.Files[f] = File{Mode: 0o644, Data: []byte("value-of-" + f)}
	}
	return Part{Name: name, Payload: p}
}

// Disjoint parts merge into one payload sharing their bytes; a part
// without files (a missing optional source) or nil adds nothing.
func TestMergeDisjoint(t *testing.T) {
	db := part(`secret "ns/db"`, "password", "conf/db.ini")
	tls := part(`secret "ns/tls"`, "tls.crt", "tls.key", "conf/tls.ini")
	got, err := Merge([]Part{db, {Name: `secret "ns/gone"`, Payload: &Payload{Files: map[string]File{}}}, tls, {Name: "nil"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"conf/db.ini", "conf/tls.ini", "password", "tls.crt", "tls.key"}
	if paths := slices.Sorted(maps.Keys(got.Files)); !slices.Equal(paths, want) {
		t.Fatalf("paths %v, want %v", paths, want)
	}
	if &got.Files["tls.key"].Data[0] != &tls.Payload.Files["tls.key"].Data[0] {
		t.Errorf("data copied")
	}
	if got, err := Merge(nil); err != nil || len(got.Files) != 0 {
		t.Errorf("no parts: %v %v", got, err)
	}
}

// The same path from two parts, or a file of one where another needs a
// folder, is a ConflictError naming both parts (in source order) and the
// path, never a value; the order of files in a part does not change which
// clash is reported.
func TestMergeConflicts(t *testing.T) {
	a, b := `secret "ns/a"`, `secret "ns/b"`
	tests := []struct {
		parts  []Part
		path   string
		folder bool
	}{
		{[]Part{part(a, "x", "same"), part(b, "same", "y")}, "same", false},
		{[]Part{part(a, "dir/f"), part(b, "dir/f")}, "dir/f", false},
		{[]Part{part(a, "conf"), part(b, "conf/db.ini")}, "conf", true},
		{[]Part{part(a, "conf/db.ini"), part(b, "conf")}, "conf", true},
		{[]Part{part(a, "a/b/c"), part(b, "a/b")}, "a/b", true},
		{[]Part{part(a, "a"), part(`secret "ns/c"`, "z"), part(b, "a/b/c")}, "a", true},
	}
	for i, tc := range tests {
		_, err := Merge(tc.parts)
		var ce *ConflictError
		if !errors.As(err, &ce) {
			t.Errorf("%d: got %v, want a conflict", i, err)
			continue
		}
		if ce.Path != tc.path || ce.A != a || ce.B != b || ce.Folder != tc.folder {
			t.Errorf("%d: %+v, want path %q between %s and %s (folder %v)", i, ce, tc.path, a, b, tc.folder)
		}
		msg := err.Error()
		if !strings.Contains(msg, `"`+tc.path+`"`) || !strings.Contains(msg, a) || !strings.Contains(msg, b) || strings.Contains(msg, "value-of") {
			t.Errorf("%d: message %q must name the path and both secrets, never a value", i, msg)
		}
	}
	// Two folders shared by two parts are no clash (kubelet merges them).
	if _, err := Merge([]Part{part(a, "conf/a"), part(b, "conf/b")}); err != nil {
		t.Errorf("shared folder: %v", err)
	}
}

// The messages users read, word for word.
func TestConflictMessages(t *testing.T) {
	db := (&Spec{Namespace: "team", SecretName: "db"}).PartName()
	tls := (&Spec{SecretName: "tls"}).PartName()
	_, err := Merge([]Part{part(db, "tls.crt"), part(tls, "tls.crt")})
	if want := `sources conflict at path "tls.crt": secret "team/db" and secret "default/tls" both give it`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	_, err = Merge([]Part{part(db, "conf"), part(tls, "conf/x")})
	if want := `sources conflict at path "conf": secret "team/db" and secret "default/tls" give a file and a folder there`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// Projected sources, end to end: each Secret projected with its own
// Spec (items, modes, optional), then merged.
func TestProjectThenMerge(t *testing.T) {
	db := &secret.Secret{Namespace: "default", Name: "db", Data: map[string][]byte{"password": []byte("pw"), "user": []byte("u")}}
	tls := &secret.Secret{Namespace: "default", Name: "tls", Data: map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}}
	mode := int32(0o400)
	specs := []*Spec{
		{Namespace: "default", SecretName: "db", Items: []Item{{Key: "password", Path: "db/password", Mode: &mode}}},
		{Namespace: "default", SecretName: "tls"},
		{Namespace: "default", SecretName: "gone", Optional: true},
	}
	var parts []Part
	for i, s := range []*secret.Secret{db, tls, nil} {
		p, err := Project(specs[i], s)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, Part{Name: specs[i].PartName(), Payload: p})
	}
	got, err := Merge(parts)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Files) != 3 || got.Files["db/password"].Mode != 0o400 || string(got.Files["tls.key"].Data) != "k" {
		t.Errorf("got %v", got.Files)
	}
	if tl := TopLevel(got); !slices.Equal(tl, []string{"db", "tls.crt", "tls.key"}) {
		t.Errorf("top level %v", tl)
	}
}
