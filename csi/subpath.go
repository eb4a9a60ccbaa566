package csi

import "fmt"

// attrSubPathUpdates asks for stable top-level files and folders, so that
// a container's subPath mount follows the Secret (fusefs.Options.SubPathUpdates).
const attrSubPathUpdates = "subPathUpdates"

// withSubPath completes what parseAttributes made with subPathUpdates,
// which every kind of volume (Secret, nodePublishSecretRef, provider)
// takes: "true" or "false" (the default), nothing else.
func withSubPath(vc map[string]string, a *Attributes, err error) (*Attributes, error) {
	if err != nil {
		return nil, err
	}
	switch v, ok := vc[attrSubPathUpdates]; {
	case !ok || v == "false":
	case v == "true":
		a.SubPathUpdates = true
	default:
		return nil, fmt.Errorf("volume attribute %s: neither \"true\" nor \"false\"", attrSubPathUpdates)
	}
	return a, nil
}
