package cluster

import (
	"fmt"
	"net"
	"path/filepath"

	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// writeServingCert writes a serving certificate for 127.0.0.1/localhost,
// signed by a fresh self-signed CA (client-go's GenerateSelfSignedCertKey),
// into certDir as apiserver.crt/.key (the names kube-apiserver itself uses
// in --cert-dir). Generating it here rather than letting the apiserver do
// it gives us the CA for the kubeconfig before the server starts, and keeps
// it stable across apiserver restarts. It returns the certificate PEM (the
// serving certificate followed by its CA), which doubles as the CA bundle.
func writeServingCert(certDir string) (certFile, keyFile string, certPEM []byte, err error) {
	certPEM, keyPEM, err := cert.GenerateSelfSignedCertKey("localhost", []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, nil)
	if err != nil {
		return "", "", nil, fmt.Errorf("serving certificate: %w", err)
	}
	certFile, keyFile = filepath.Join(certDir, "apiserver.crt"), filepath.Join(certDir, "apiserver.key")
	if err := keyutil.WriteKey(keyFile, keyPEM); err != nil {
		return "", "", nil, fmt.Errorf("write %s: %w", keyFile, err)
	}
	if err := cert.WriteCert(certFile, certPEM); err != nil {
		return "", "", nil, fmt.Errorf("write %s: %w", certFile, err)
	}
	return certFile, keyFile, certPEM, nil
}

// writeServiceAccountKey writes an EC private key; kube-apiserver derives the
// public key from it for --service-account-key-file and signs tokens with it
// (--service-account-signing-key-file, ES256). Pure Go: no openssl needed.
func writeServiceAccountKey(path string) error {
	key, err := keyutil.MakeEllipticPrivateKeyPEM()
	if err != nil {
		return fmt.Errorf("service account key: %w", err)
	}
	if err := keyutil.WriteKey(path, key); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
