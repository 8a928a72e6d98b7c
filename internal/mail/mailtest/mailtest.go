// Package mailtest runs a real SMTP server (go-smtp) on a random local
// port for tests, and reads back what it received: envelope, headers and
// decoded MIME parts.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The credentials the server accepts (AUTH PLAIN).
const (
	User     = "fabgate"
	Password = "s3cret pass"
)

// Received is one message as the SMTP server got it.
type Received struct {
	From   string
	To     []string
	Data   []byte
	TLS    bool   // the session was encrypted
	User   string // the authenticated user
	Header netmail.Header
}

// Server is a real SMTP server for tests.
type Server struct {
	srv  *smtp.Server
	Host string
	Port int
	// Roots trusts the server's certificate.
	Roots *x509.CertPool

	mu       sync.Mutex
	msgs     []Received
	failNext int // DATA commands to refuse with 451 before accepting
	arrived  chan struct{}
}

// Mode is how the test server speaks TLS.
type Mode int

const (
	StartTLS Mode = iota // offers STARTTLS
	Plain                // no TLS at all
	Implicit             // TLS from the first byte (smtps)
)

// Start starts a server requiring AUTH PLAIN with User and Password.
func Start(t testing.TB, mode Mode) *Server {
	t.Helper()
	cert, roots := cert(t)
	s := &Server{Roots: roots, arrived: make(chan struct{}, 100)}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: s, conn: c}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 30*time.Second, 30*time.Second
	s.srv.MaxMessageBytes = 1 << 20
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case StartTLS:
		s.srv.TLSConfig = tlsCfg
	case Plain:
		s.srv.AllowInsecureAuth = true
	case Implicit:
		ln = tls.NewListener(ln, tlsCfg)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	s.Host = host
	s.Port, _ = strconv.Atoi(port)
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// URL is the smtp_url of the server, with its credentials.
func (s *Server) URL(scheme, query string) string {
	u := scheme + "://" + User + ":" + strings.ReplaceAll(Password, " ", "%20") + "@" + s.Host + ":" + strconv.Itoa(s.Port)
	if query != "" {
		u += "?" + query
	}
	return u
}

// Refuse makes the next n DATA commands fail with a temporary error.
func (s *Server) Refuse(n int) {
	s.mu.Lock()
	s.failNext = n
	s.mu.Unlock()
}

// Messages returns what the server accepted so far.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// Wait waits (up to a generous bound, for a loaded machine) until the
// server holds n messages, and returns them.
func (s *Server) Wait(t testing.TB, n int) []Received {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if msgs := s.Messages(); len(msgs) >= n {
			return msgs
		}
		select {
		case <-s.arrived:
		case <-deadline:
			t.Fatalf("the SMTP server got %d messages, want %d", len(s.Messages()), n)
		}
	}
}

type session struct {
	srv  *Server
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != User || password != Password {
			return errors.New("invalid credentials")
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.failNext > 0 {
		s.srv.failNext--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return err
	}
	_, encrypted := s.conn.TLSConnectionState()
	s.srv.msgs = append(s.srv.msgs, Received{From: s.from, To: s.to, Data: data, TLS: encrypted, User: s.user, Header: msg.Header})
	s.srv.arrived <- struct{}{}
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// cert makes a self-signed certificate for 127.0.0.1 and localhost.
func cert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fabgate test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// Part is one leaf MIME part of a message, decoded.
type Part struct {
	ContentType string // full header value
	MediaType   string
	Disposition string
	Filename    string
	Body        []byte
}

// Parts walks a message's MIME tree and returns its header and its leaves
// in order.
func Parts(t testing.TB, data []byte) (netmail.Header, []Part) {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	var out []Part
	var walk func(h map[string][]string, body io.Reader)
	walk = func(h map[string][]string, body io.Reader) {
		ct := first(h["Content-Type"])
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatalf("content type %q: %v", ct, err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatalf("next part: %v", err)
				}
				walk(p.Header, p)
			}
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		switch strings.ToLower(first(h["Content-Transfer-Encoding"])) {
		case "base64":
			raw, err = io.ReadAll(newBase64(raw))
		case "quoted-printable":
			raw, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
		}
		if err != nil {
			t.Fatalf("decode part %s: %v", mt, err)
		}
		p := Part{ContentType: ct, MediaType: mt, Body: raw}
		if d := first(h["Content-Disposition"]); d != "" {
			disp, dp, err := mime.ParseMediaType(d)
			if err != nil {
				t.Fatalf("content disposition %q: %v", d, err)
			}
			p.Disposition, p.Filename = disp, dp["filename"]
		}
		out = append(out, p)
	}
	walk(msg.Header, msg.Body)
	return msg.Header, out
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// DecodeHeader decodes RFC 2047 encoded words.
func DecodeHeader(t testing.TB, v string) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		t.Fatalf("decode header %q: %v", v, err)
	}
	return s
}

// newBase64 decodes a base64 body broken into lines.
func newBase64(raw []byte) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, raw)))
}
