package backend

import (
	"context"
	"errors"
)

// ErrClassNotFound is wrapped by GetClass when the SecretProviderClass
// does not exist in the namespace asked.
var ErrClassNotFound = errors.New("secretproviderclass not found")

// ProviderClass is what secretfs uses of a SecretProviderClass
// (secrets-store.csi.x-k8s.io/v1): which provider serves it and the
// parameters handed to that provider.
type ProviderClass struct {
	Namespace, Name string
	Provider        string
	Parameters      map[string]string
}

// ClassReader reads SecretProviderClasses. It is asked for one namespace
// at a time and never looks into another: a Pod's volume may only use a
// class of its own namespace.
type ClassReader interface {
	// GetClass reads the class now. A missing class is an error wrapping
	// ErrClassNotFound; one the plugin may not read wraps ErrForbidden;
	// anything else means the source is unreachable.
	GetClass(ctx context.Context, namespace, name string) (*ProviderClass, error)
}
