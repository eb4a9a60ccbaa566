package projection

import (
	"fmt"
	"slices"
	"strings"

	"github.com/secretfs/secretfs/secret"
)

// DefaultMode is the file mode when neither the item nor the volume sets one.
const DefaultMode = 0o644

// NotFoundError says a non-optional Secret (Key == "") or one of its keys
// is missing. Callers map it to NotFound.
type NotFoundError struct {
	Ref string // "namespace/name"
	Key string // empty: the whole Secret
}

func (e *NotFoundError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("secret %q not found", e.Ref)
	}
	return fmt.Sprintf("secret %q has no key %q", e.Ref, e.Key)
}

// Ref is "namespace/name" of the Secret the volume shows; an empty
// namespace means "default", as for manifests.
func (s *Spec) Ref() string {
	ns := s.Namespace
	if ns == "" {
		ns = "default"
	}
	return ns + "/" + s.SecretName
}

// Project computes the files of the volume as kubelet's secret plugin does
// (MakePayload). sec == nil means the Secret does not exist. The file data
// shares the Secret's bytes.
func Project(spec *Spec, sec *secret.Secret) (*Payload, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	p := &Payload{Files: map[string]File{}}
	if sec == nil {
		if spec.Optional {
			return p, nil
		}
		return nil, &NotFoundError{Ref: spec.Ref()}
	}
	def := int32(DefaultMode)
	if spec.DefaultMode != nil {
		def = *spec.DefaultMode
	}
	mode := func(m *int32) uint32 {
		if m == nil {
			m = &def
		}
		mm := uint32(*m)
		if spec.FSGroup != nil {
			mm |= 0o440 // kubelet makes files readable to owner and fsGroup
		}
		return mm
	}
	if len(spec.Items) == 0 {
		for k, v := range sec.Data {
			p.Files[k] = File{Mode: mode(nil), Data: v}
		}
		return p, nil
	}
	for _, it := range spec.Items {
		v, ok := sec.Data[it.Key]
		if !ok {
			if spec.Optional {
				continue
			}
			return nil, &NotFoundError{Ref: spec.Ref(), Key: it.Key}
		}
		p.Files[it.Path] = File{Mode: mode(it.Mode), Data: v}
	}
	return p, nil
}

// Size is the total number of data bytes in the payload.
func (p *Payload) Size() int {
	n := 0
	for _, f := range p.Files {
		n += len(f.Data)
	}
	return n
}

// TopLevel lists the sorted, unique first elements of the payload's paths:
// the names kubelet links into the volume root ("name -> ..data/name").
func TopLevel(p *Payload) []string {
	var names []string
	for path := range p.Files {
		first, _, _ := strings.Cut(path, "/")
		names = append(names, first)
	}
	slices.Sort(names)
	return slices.Compact(names)
}
