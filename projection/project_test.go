package projection

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/secretfs/secretfs/secret"
)

func m(v int32) *int32 { return &v }

// mysecret is the seed's example: username admin, password 1f2d1e2e67df.
func mysecret() *secret.Secret {
	return &secret.Secret{Namespace: "default", Name: "mysecret", Type: "Opaque", Data: map[string][]byte{
		"username": []byte("admin"), "password": []byte("1f2d1e2e67df"),
	}}
}

func TestSpecValidate(t *testing.T) {
	ok := []Spec{
		{SecretName: "s"},
		{SecretName: "s", DefaultMode: m(0), Items: []Item{{Key: "a", Path: "x/a", Mode: m(0o777)}, {Key: "a", Path: "x/b"}}},
		{SecretName: "s", Items: []Item{{Key: ".secret-file", Path: ".secret-file"}, {Key: "b", Path: "ab/c"}, {Key: "c", Path: "a"}}},
	}
	for i, s := range ok {
		if err := s.Validate(); err != nil {
			t.Errorf("ok[%d]: %v", i, err)
		}
	}
	tests := []struct {
		spec Spec
		want string
	}{
		{Spec{}, "secretName"},
		{Spec{SecretName: "s", DefaultMode: m(0o1000)}, "defaultMode"},
		{Spec{SecretName: "s", DefaultMode: m(-1)}, "defaultMode"},
		{Spec{SecretName: "s", Items: []Item{{Key: "a", Path: "a"}, {Key: "b", Path: "..x"}}}, `items[1].path "..x"`},
		{Spec{SecretName: "s", Items: []Item{{Key: "a", Path: "/etc/a"}}}, `items[0].path "/etc/a"`},
		{Spec{SecretName: "s", Items: []Item{{Key: "a/b", Path: "a"}}}, `items[0].key "a/b"`},
		{Spec{SecretName: "s", Items: []Item{{Key: "", Path: "a"}}}, `items[0].key ""`},
		{Spec{SecretName: "s", Items: []Item{{Key: "..a", Path: "a"}}}, `items[0].key "..a"`},
		{Spec{SecretName: "s", Items: []Item{{Key: "a", Path: "a", Mode: m(0o4755)}}}, "items[0].mode"},
		{Spec{SecretName: "s", Items: []Item{{Key: "a", Path: "p"}, {Key: "b", Path: "p"}}}, `items[1].path "p": same path as items[0]`},
		{Spec{SecretName: "s", Items: []Item{{Key: "a", Path: "a"}, {Key: "b", Path: "a/b/c"}}}, `items[1].path "a/b/c"`},
		{Spec{SecretName: "s", Items: []Item{{Key: "b", Path: "a/b/c"}, {Key: "a", Path: "a/b"}}}, `items[0].path "a/b/c"`},
	}
	for _, tc := range tests {
		err := tc.spec.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func TestProjectAllKeys(t *testing.T) {
	p, err := Project(&Spec{Namespace: "default", SecretName: "mysecret"}, mysecret())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"username": "admin", "password": "1f2d1e2e67df"}
	if len(p.Files) != len(want) {
		t.Fatalf("got %d files", len(p.Files))
	}
	for k, v := range want {
		f := p.Files[k]
		if string(f.Data) != v || f.Mode != 0o644 {
			t.Errorf("%s: %q mode %#o", k, f.Data, f.Mode)
		}
	}
	if got := TopLevel(p); !slices.Equal(got, []string{"password", "username"}) {
		t.Errorf("TopLevel %v", got)
	}
	if p.Size() != len("admin")+len("1f2d1e2e67df") {
		t.Errorf("Size %d", p.Size())
	}
}

func TestProjectItems(t *testing.T) {
	// The seed's items example: username at my-group/my-username, password not shown.
	spec := &Spec{SecretName: "mysecret", Items: []Item{{Key: "username", Path: "my-group/my-username"}}}
	p, err := Project(spec, mysecret())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files) != 1 || string(p.Files["my-group/my-username"].Data) != "admin" {
		t.Fatalf("got %v", p.Files)
	}
	if got := TopLevel(p); !slices.Equal(got, []string{"my-group"}) {
		t.Errorf("TopLevel %v", got)
	}
	// The same key twice at two paths is allowed, as in kubelet.
	spec.Items = append(spec.Items, Item{Key: "username", Path: "u"}, Item{Key: "password", Path: "my-group/pw"})
	p, err = Project(spec, mysecret())
	if err != nil || len(p.Files) != 3 || !slices.Equal(TopLevel(p), []string{"my-group", "u"}) {
		t.Fatalf("got %v, %v", p, err)
	}
}

func TestProjectModes(t *testing.T) {
	gid := int64(2000)
	tests := []struct {
		name      string
		def, item *int32
		fsGroup   *int64
		want      uint32
	}{
		{"default", nil, nil, nil, 0o644},
		{"defaultMode", m(0o400), nil, nil, 0o400},
		{"item wins", m(0o400), m(0o600), nil, 0o600},
		{"item zero wins", m(0o400), m(0), nil, 0},
		{"fsGroup default", nil, nil, &gid, 0o644 | 0o440},
		{"fsGroup 0400", m(0o400), nil, &gid, 0o440},
		{"fsGroup item 0600", nil, m(0o600), &gid, 0o640},
		{"fsGroup item 0", nil, m(0), &gid, 0o440},
		{"fsGroup 0777", m(0o777), nil, &gid, 0o777},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := &Spec{SecretName: "mysecret", DefaultMode: tc.def, FSGroup: tc.fsGroup,
				Items: []Item{{Key: "username", Path: "u", Mode: tc.item}, {Key: "password", Path: "p"}}}
			p, err := Project(spec, mysecret())
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Files["u"].Mode; got != tc.want {
				t.Errorf("mode %#o, want %#o", got, tc.want)
			}
			// Without items every key takes the volume's mode.
			spec.Items = nil
			p, _ = Project(spec, mysecret())
			if tc.item == nil && p.Files["username"].Mode != tc.want {
				t.Errorf("no items: mode %#o, want %#o", p.Files["username"].Mode, tc.want)
			}
		})
	}
}

func TestProjectMissing(t *testing.T) {
	var nf *NotFoundError
	_, err := Project(&Spec{Namespace: "team", SecretName: "gone"}, nil)
	if !errors.As(err, &nf) || nf.Ref != "team/gone" || nf.Key != "" || !strings.Contains(err.Error(), "team/gone") {
		t.Errorf("missing secret: %v", err)
	}
	_, err = Project(&Spec{SecretName: "gone"}, nil)
	if !errors.As(err, &nf) || nf.Ref != "default/gone" {
		t.Errorf("missing secret, default namespace: %v", err)
	}
	p, err := Project(&Spec{SecretName: "gone", Optional: true}, nil)
	if err != nil || len(p.Files) != 0 {
		t.Errorf("optional missing secret: %v %v", p, err)
	}
	items := []Item{{Key: "username", Path: "u"}, {Key: "nokey", Path: "n"}}
	_, err = Project(&Spec{Namespace: "default", SecretName: "mysecret", Items: items}, mysecret())
	if !errors.As(err, &nf) || nf.Key != "nokey" || !strings.Contains(err.Error(), `"nokey"`) || !strings.Contains(err.Error(), "default/mysecret") {
		t.Errorf("missing key: %v", err)
	}
	p, err = Project(&Spec{SecretName: "mysecret", Items: items, Optional: true}, mysecret())
	if err != nil || len(p.Files) != 1 || string(p.Files["u"].Data) != "admin" {
		t.Errorf("optional missing key: %v %v", p, err)
	}
	// An invalid spec fails even when the Secret is missing and optional.
	if _, err := Project(&Spec{SecretName: "s", Optional: true, Items: []Item{{Key: "a", Path: "../x"}}}, nil); err == nil {
		t.Errorf("invalid spec accepted")
	}
}

func TestProjectDotfile(t *testing.T) {
	// The seed's dotfile-secret: one hidden file .secret-file.
	s := &secret.Secret{Namespace: "default", Name: "dotfile-secret", Data: map[string][]byte{".secret-file": []byte("value-2\r\n\r\n")}}
	p, err := Project(&Spec{SecretName: "dotfile-secret"}, s)
	if err != nil || len(p.Files) != 1 || string(p.Files[".secret-file"].Data) != "value-2\r\n\r\n" {
		t.Fatalf("got %v, %v", p, err)
	}
	if got := TopLevel(p); !slices.Equal(got, []string{".secret-file"}) {
		t.Errorf("TopLevel %v", got)
	}
}

func TestProjectSharesBytes(t *testing.T) {
	s := mysecret()
	p, _ := Project(&Spec{SecretName: "mysecret"}, s)
	if &p.Files["username"].Data[0] != &s.Data["username"][0] {
		t.Errorf("data copied")
	}
	if len(TopLevel(&Payload{Files: map[string]File{}})) != 0 || (&Payload{}).Size() != 0 {
		t.Errorf("empty payload")
	}
}

func TestSeedManifestEndToEnd(t *testing.T) {
	// kubectl edit's view of mysecret, mounted with the seed's defaultMode: 0400.
	doc := "apiVersion: v1\ndata:\n  username: YWRtaW4=\n  password: MWYyZDFlMmU2N2Rm\nkind: Secret\n" +
		"metadata:\n  name: mysecret\n  namespace: default\ntype: Opaque\n"
	ps, err := secret.ParseManifests([]byte(doc), "mysecret.yaml")
	if err != nil || len(ps) != 1 || ps[0].Err != nil {
		t.Fatalf("parse: %v %v", ps, err)
	}
	mode, _ := ParseMode("0400")
	p, err := Project(&Spec{SecretName: "mysecret", DefaultMode: &mode}, ps[0].Secret)
	if err != nil || string(p.Files["password"].Data) != "1f2d1e2e67df" || p.Files["username"].Mode != 0o400 {
		t.Fatalf("got %v, %v", p, err)
	}
}
