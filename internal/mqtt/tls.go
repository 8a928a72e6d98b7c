package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Errors of ClientTLS, wrapped with the file name; callers say which
// setting named the file.
var (
	ErrCAFile   = errors.New("CA file")
	ErrCertFile = errors.New("client certificate or key")
)

// ClientTLS builds a client's TLS settings for an ssl:// broker: caFile (PEM;
// empty: the system's roots) and a client certificate with its key (PEM;
// both empty: none).
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCAFile, err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrCAFile, caFile)
		}
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCertFile, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
