package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
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

func TestServerTLSFiles(t *testing.T) {
	files, other := mqtttest.WriteTLS(t), mqtttest.WriteTLS(t)
	cfg, err := ServerTLS(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || len(cfg.Certificates) != 1 || cfg.Certificates[0].Leaf == nil || cfg.Certificates[0].Leaf.Subject.CommonName != "localhost" {
		t.Fatalf("settings %+v: want TLS 1.2 at least and the localhost certificate with its leaf", cfg)
	}
	missing := filepath.Join(t.TempDir(), "none.pem")
	for _, tt := range []struct {
		name      string
		cert, key string
		want      string
	}{
		{"missing certificate", missing, files.Key, "no such file"},
		{"missing key", files.Cert, missing, "no such file"},
		{"the CA's certificate without a key of its own", files.CA, files.Key, "does not match"},
		{"another certificate's key", files.Cert, other.Key, "does not match"},
		{"certificate and key swapped", files.Key, files.Cert, "PEM"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ServerTLS(tt.cert, tt.key)
			if !errors.Is(err, ErrServerCertFile) {
				t.Fatalf("error %v, want %v", err, ErrServerCertFile)
			}
			for _, want := range []string{tt.want, tt.cert, tt.key} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
	_, err = StartBroker(BrokerConfig{Listen: "127.0.0.1:0", ServerUser: testServerUser, ServerPassword: testServerPass, TLS: &tls.Config{}})
	if err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("TLS settings without a certificate: %v", err)
	}
}

// The broker's TLS listener: devices that trust its CA log in, the
// server's own client trusts its certificate alone, and plain MQTT, an
// unknown CA and old TLS versions are turned away at the handshake (counted
// and logged); the listener's guard still reads the packets inside TLS.
func TestBrokerTLS(t *testing.T) {
	files := mqtttest.WriteTLS(t)
	srvTLS, err := ServerTLS(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	b, buf := startGuardedBroker(t, hashedDevices(t), func(c *BrokerConfig) { c.TLS = srvTLS })
	_, port, _ := net.SplitHostPort(b.Addr())
	if want := "ssl://127.0.0.1:" + port; b.URL() != want {
		t.Fatalf("URL %q, want %q", b.URL(), want)
	}
	log, _ := testLog(t)
	srv := dial(t, "", testServerUser, testServerPass, withLog(log), func(c *ClientConfig) { c.Broker, c.TLS = b.URL(), b.ClientTLS() })
	tap := devTopic(testPrefix, devA, "tap")
	in := newInbox()
	subscribe(t, srv, tap, in)

	caTLS, err := ClientTLS(files.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		dev := dial(t, "", devA, secretA, withLog(log), func(c *ClientConfig) { c.Broker, c.TLS = "ssl://"+net.JoinHostPort(host, port), caTLS })
		publish(t, dev, tap, "via "+host, 1, false)
		in.waitFor(t, tap, "via "+host)
		dev.Close(nil)
	}

	other := mqtttest.WriteTLS(t)
	otherCA, err := ClientTLS(other.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		broker string
		tls    *tls.Config
		want   string
	}{
		{"plain MQTT", "tcp://127.0.0.1:" + port, nil, ""},
		{"unknown CA", "ssl://127.0.0.1:" + port, otherCA, "certificate"},
		{"TLS 1.1", "ssl://127.0.0.1:" + port, &tls.Config{RootCAs: caTLS.RootCAs, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, "version"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := b.Stats().DroppedConnections
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			c, err := Connect(ctx, ClientConfig{Broker: tt.broker, TLS: tt.tls, ClientID: devB, Username: devB, Password: secretB, Log: log})
			if err == nil {
				c.Close(nil)
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			eventually(t, "the refused handshake counted", func() bool { return b.Stats().DroppedConnections > before })
		})
	}
	if !strings.Contains(buf.String(), `reason="tls handshake: `) {
		t.Errorf("the refused handshakes are not logged:\n%s", buf)
	}
	if n := b.Stats().RefusedConnects; n != 0 {
		t.Errorf("%d CONNECTs refused: a client turned away at the handshake got as far as logging in", n)
	}

	// The server's settings trust this broker's certificate, not another
	// one signed by a CA the lab might also use.
	b2, _ := startGuardedBroker(t, hashedDevices(t), func(c *BrokerConfig) { c.TLS, _ = ServerTLS(other.Cert, other.Key) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c, err := Connect(ctx, ClientConfig{Broker: b2.URL(), TLS: b.ClientTLS(), ClientID: uniqueID("srv"), Username: testServerUser, Password: testServerPass, Log: log}); err == nil {
		c.Close(nil)
		t.Fatal("the server's client took another broker's certificate")
	} else if !strings.Contains(err.Error(), "not the embedded broker's own") {
		t.Errorf("error %q does not say the certificate is not the broker's", err)
	}

	// Inside TLS, the guard reads the MQTT packets: a PUBLISH before the
	// CONNECT is cut, a CONNECT is answered.
	before := b.Stats().DroppedConnections
	raw := tlsDial(t, b.Addr(), caTLS)
	if _, err := raw.Write(append([]byte{0x30}, remainingLength(10)...)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, raw, "PUBLISH before CONNECT over TLS")
	if got := b.Stats().DroppedConnections; got != before+1 {
		t.Errorf("dropped connections %d, want %d", got, before+1)
	}
	raw = tlsDial(t, b.Addr(), caTLS)
	if _, err := raw.Write(connectBytes(devB, devB, secretB)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, raw); code != 0 {
		t.Errorf("CONNACK code %d over TLS, want 0", code)
	}
}

func tlsDial(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitLong}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s over TLS: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
