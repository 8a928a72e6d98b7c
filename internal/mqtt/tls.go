package mqtt

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Errors of ClientTLS and ServerTLS, wrapped with the file names; callers
// say which setting named the file.
var (
	ErrCAFile         = errors.New("CA file")
	ErrCertFile       = errors.New("client certificate or key")
	ErrServerCertFile = errors.New("broker certificate or key")
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

// ServerTLS loads the embedded broker's certificate and private key (PEM
// files; the certificate file may carry intermediate CA certificates after
// the broker's own) into TLS settings for BrokerConfig.TLS, TLS 1.2 at
// least. The certificate's Leaf is set. A missing or unreadable file, a
// file without PEM data or a key that is not the certificate's is an error
// naming both files.
func ServerTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil && cert.Leaf == nil {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	if err != nil {
		return nil, fmt.Errorf("%w (certificate %s, key %s): %w", ErrServerCertFile, certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// pinnedTLS returns client settings that accept exactly the certificate
// whose DER encoding is leaf, and nothing else: the server's own client
// connects to its embedded broker on a loopback or local address, which the
// certificate (made for the name the bridges use) need not name, so the
// usual chain and name checks are replaced by this stricter one.
func pinnedTLS(leaf []byte) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Not skipped: VerifyConnection checks the certificate, against
		// the one the broker was given rather than a CA and a name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, leaf) {
				return errors.New("mqtt: the broker's certificate is not the embedded broker's own")
			}
			return nil
		},
	}
}
