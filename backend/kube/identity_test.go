package kube

import (
	"encoding/base64"
	"testing"

	"github.com/secretfs/secretfs/backend"
)

func TestIdentity(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"system:serviceaccount:team:app"}`))
	jwt := "eyJhbGciOiJSUzI1NiJ9." + payload + ".sig"
	for _, tc := range []struct {
		token string
		want  string
	}{
		{"", "the plugin's credentials"},
		{jwt, "service account team/app"},
		{"opaque-token", "the pod's token"},
	} {
		if got := identity(backend.Ref{Token: tc.token}, nil); got != tc.want {
			t.Errorf("identity(%.12q) = %q, want %q", tc.token, got, tc.want)
		}
	}
}
