package provider

import (
	"bytes"
	"cmp"
	"regexp"
	"slices"

	"google.golang.org/grpc/codes"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/secretfs/secretfs/projection"
)

// Files is one good reply: the files by path (mode resolved, no fsGroup
// yet) and the object versions to send back next time.
type Files struct {
	files    map[string]projection.File
	versions []*v1alpha1.ObjectVersion
}

// Len is the number of files.
func (f *Files) Len() int { return len(f.files) }

// Payload is what a volume with fsGroup shows of f. The bytes are shared:
// the filesystem copies them.
func (f *Files) Payload(fsGroup *int64) *projection.Payload {
	p := &projection.Payload{Files: make(map[string]projection.File, len(f.files))}
	for path, file := range f.files {
		if fsGroup != nil {
			file.Mode |= 0o440 // as kubelet: readable to owner and fsGroup
		}
		p.Files[path] = file
	}
	return p
}

// equal says whether f and o show the same files (versions aside).
func (f *Files) equal(o *Files) bool {
	if len(f.files) != len(o.files) {
		return false
	}
	for path, a := range f.files {
		b, ok := o.files[path]
		if !ok || a.Mode != b.Mode || !bytes.Equal(a.Data, b.Data) {
			return false
		}
	}
	return true
}

// wipe overwrites the bytes once no volume needs them.
func (f *Files) wipe() {
	if f == nil {
		return
	}
	for _, file := range f.files {
		clear(file.Data)
	}
}

// codeRE bounds a provider's error.code before it becomes a message or a
// metric label.
var codeRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// checkReply turns a Mount reply into Files, or refuses it: a non-empty
// error.code is Unavailable naming it; a path or mode that a secret
// volume's item would not be allowed is FailedPrecondition naming the
// path (projection.ValidateLayout, the rules of secret volume items). Mode 0 means
// defaultMode.
func checkReply(provider string, resp *v1alpha1.MountResponse, defaultMode int32) (*Files, error) {
	if c := resp.GetError().GetCode(); c != "" {
		if !codeRE.MatchString(c) {
			c = "(not printable)"
		}
		return nil, errorf(codes.Unavailable, "provider %q: reply error code %s", provider, c)
	}
	entries := make([]projection.Entry, len(resp.GetFiles()))
	for i, f := range resp.GetFiles() {
		m := f.GetMode()
		entries[i] = projection.Entry{Path: f.GetPath(), Mode: &m}
	}
	if err := projection.ValidateLayout("files", entries); err != nil {
		return nil, errorf(codes.FailedPrecondition, "provider %q: reply refused: %v", provider, err)
	}
	out := &Files{files: make(map[string]projection.File, len(entries))}
	for _, f := range resp.GetFiles() {
		m := f.GetMode()
		if m == 0 {
			m = defaultMode
		}
		out.files[f.GetPath()] = projection.File{Mode: uint32(m), Data: f.GetContents()}
	}
	for _, v := range resp.GetObjectVersion() {
		out.versions = append(out.versions, &v1alpha1.ObjectVersion{Id: v.GetId(), Version: v.GetVersion()})
	}
	slices.SortFunc(out.versions, func(a, b *v1alpha1.ObjectVersion) int { return cmp.Compare(a.Id, b.Id) })
	return out, nil
}
