package mqtt

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestClientTLSFileErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name          string
		ca, cert, key string
		want          error
	}{
		{"missing CA", filepath.Join(dir, "none.pem"), "", "", ErrCAFile},
		{"CA without PEM", notPEM, "", "", ErrCAFile},
		{"certificate without its key", "", notPEM, "", ErrCertFile},
		{"key without certificate", "", "", notPEM, ErrCertFile},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ClientTLS(tt.ca, tt.cert, tt.key); !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
	if c, err := ClientTLS("", "", ""); err != nil || c.RootCAs != nil || len(c.Certificates) != 0 {
		t.Fatalf("no files: %+v, %v; want the system roots", c, err)
	}
}
