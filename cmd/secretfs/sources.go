//go:build linux

package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
)

// secretsFlag collects `secretfs mount`'s --secret NAME (repeatable) and
// the --item flags that follow each: an --item belongs to the --secret
// before it on the command line. With one --secret, every --item is its
// own wherever it stands (as before --secret could repeat).
type secretsFlag struct {
	names  []string
	items  []itemsFlag // items[i] follow names[i]
	before itemsFlag   // --item before any --secret
}

func (f *secretsFlag) String() string { return "" }

func (f *secretsFlag) Set(s string) error {
	if s == "" {
		return errors.New("empty Secret name")
	}
	f.names = append(f.names, s)
	f.items = append(f.items, nil)
	return nil
}

// itemFlag is --item: it joins the items of the last --secret so far.
type itemFlag struct{ f *secretsFlag }

func (a itemFlag) String() string { return "" }

func (a itemFlag) Set(s string) error {
	f := a.f
	list := &f.before
	if n := len(f.names); n > 0 {
		list = &f.items[n-1]
	}
	return list.Set(s)
}

// sources are the volume's Secrets, each with its items, and the
// volume-wide namespace, defaultMode, optional and fsGroup.
func (m *mountFlags) sources() ([]projection.Spec, error) {
	f := &m.secrets
	switch {
	case len(f.names) == 0:
		return nil, errors.New("--secret is required")
	case len(f.names) > 1 && len(f.before) > 0:
		return nil, fmt.Errorf("--item %s comes before any --secret: with several --secret, each --item follows the Secret it belongs to", f.before[0].Key)
	}
	specs := make([]projection.Spec, len(f.names))
	for i, name := range f.names {
		items := f.items[i]
		if len(f.names) == 1 {
			items = append(f.before, items...)
		}
		specs[i] = projection.Spec{Namespace: m.namespace, SecretName: name, Items: items,
			DefaultMode: m.defaultMode.mode, Optional: m.optional, FSGroup: m.fsGroup.gid}
		if err := specs[i].Validate(); err != nil {
			if len(f.names) > 1 {
				return nil, fmt.Errorf("--secret %s: %w", name, err)
			}
			return nil, err
		}
	}
	return specs, nil
}

// volumeOf sets cfg's Secret, or its sources when there are several
// (merged as a projected volume, conflicts refused), and names them for
// the log.
func volumeOf(cfg *mounted.Config, specs []projection.Spec) string {
	cfg.Spec = specs[0]
	if len(specs) == 1 {
		return specs[0].Ref()
	}
	refs := make([]string, len(specs))
	for i, s := range specs {
		cfg.Sources = append(cfg.Sources, mounted.Source{Spec: s})
		refs[i] = s.Ref()
	}
	return strings.Join(refs, ",")
}
