package kube

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/secretfs/secretfs/backend"
)

// ClassResource is the SecretProviderClass resource of the Secrets Store
// CSI Driver's CRD.
var ClassResource = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasses"}

// Classes reads SecretProviderClasses with the plugin's own identity (a
// class holds no secret, only where and how to fetch one; the plugin's
// ClusterRole grants get on them). A Get per provider refresh: a changed
// class applies from the next refresh on.
type Classes struct {
	dyn dynamic.Interface
}

var _ backend.ClassReader = (*Classes)(nil)

// NewClasses makes a class reader from cfg (not modified).
func NewClasses(cfg *rest.Config) (*Classes, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "secretfs"
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube client for secretproviderclasses: %w", err)
	}
	return &Classes{dyn: dyn}, nil
}

// classSpec is the part of a SecretProviderClass secretfs reads.
type classSpec struct {
	Spec struct {
		Provider   string            `json:"provider"`
		Parameters map[string]string `json:"parameters"`
	} `json:"spec"`
}

// GetClass reads namespace/name now.
func (c *Classes) GetClass(ctx context.Context, namespace, name string) (*backend.ProviderClass, error) {
	ref := namespace + "/" + name
	obj, err := c.dyn.Resource(ClassResource).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("secretproviderclass %s: %w", ref, backend.ErrClassNotFound)
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return nil, fmt.Errorf("secretproviderclass %s: %w: the plugin's identity may not get secretproviderclasses.secrets-store.csi.x-k8s.io (RBAC)", ref, backend.ErrForbidden)
	case err != nil:
		return nil, fmt.Errorf("secretproviderclass %s: kubernetes API unreachable: %w", ref, err)
	}
	return fromUnstructured(obj)
}

func fromUnstructured(obj *unstructured.Unstructured) (*backend.ProviderClass, error) {
	var spec classSpec
	ref := obj.GetNamespace() + "/" + obj.GetName()
	// The CRD's schema makes parameters a map of strings; an object that
	// is not is named, its content never quoted.
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &spec); err != nil {
		return nil, fmt.Errorf("secretproviderclass %s: spec is not {provider, parameters: map of strings}", ref)
	}
	return &backend.ProviderClass{Namespace: obj.GetNamespace(), Name: obj.GetName(),
		Provider: spec.Spec.Provider, Parameters: spec.Spec.Parameters}, nil
}
