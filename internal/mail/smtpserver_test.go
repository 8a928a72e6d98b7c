package mail

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

// The tests of this package send to a real SMTP server (go-smtp) started
// on a random local port, and read back what it received.

const (
	testUser     = "fabgate"
	testPassword = "s3cret pass"
)

// received is one message as the SMTP server got it.
type received struct {
	From   string
	To     []string
	Data   []byte
	TLS    bool   // the session was encrypted
	User   string // the authenticated user
	Header netmail.Header
}

// smtpServer is a real SMTP server for tests.
type smtpServer struct {
	srv  *smtp.Server
	Host string
	Port int
	// Roots trusts the server's certificate.
	Roots *x509.CertPool

	mu       sync.Mutex
	msgs     []received
	failNext int // DATA commands to refuse with 451 before accepting
	arrived  chan struct{}
}

// smtpMode is how the test server speaks TLS.
type smtpMode int

const (
	modeStartTLS smtpMode = iota // offers STARTTLS
	modePlain                    // no TLS at all
	modeImplicit                 // TLS from the first byte (smtps)
)

// startSMTP starts a server requiring AUTH PLAIN with testUser and testPassword.
func startSMTP(t *testing.T, mode smtpMode) *smtpServer {
	t.Helper()
	cert, roots := testCert(t)
	s := &smtpServer{Roots: roots, arrived: make(chan struct{}, 100)}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{srv: s, conn: c}, nil
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
	case modeStartTLS:
		s.srv.TLSConfig = tlsCfg
	case modePlain:
		s.srv.AllowInsecureAuth = true
	case modeImplicit:
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
func (s *smtpServer) URL(scheme, query string) string {
	u := scheme + "://" + testUser + ":" + strings.ReplaceAll(testPassword, " ", "%20") + "@" + s.Host + ":" + strconv.Itoa(s.Port)
	if query != "" {
		u += "?" + query
	}
	return u
}

// refuse makes the next n DATA commands fail with a temporary error.
func (s *smtpServer) refuse(n int) {
	s.mu.Lock()
	s.failNext = n
	s.mu.Unlock()
}

// Messages returns what the server accepted so far.
func (s *smtpServer) Messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

// wait waits (up to a generous bound, for a loaded machine) until the
// server holds n messages, and returns them.
func (s *smtpServer) wait(t *testing.T, n int) []received {
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

type smtpSession struct {
	srv  *smtpServer
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != testUser || password != testPassword {
			return errors.New("invalid credentials")
		}
		s.user = username
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
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
	s.srv.msgs = append(s.srv.msgs, received{From: s.from, To: s.to, Data: data, TLS: encrypted, User: s.user, Header: msg.Header})
	s.srv.arrived <- struct{}{}
	return nil
}

func (s *smtpSession) Reset()        { s.from, s.to = "", nil }
func (s *smtpSession) Logout() error { return nil }

// testCert makes a self-signed certificate for 127.0.0.1 and localhost.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
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

// part is one leaf MIME part of a message, decoded.
type part struct {
	ContentType string // full header value
	MediaType   string
	Disposition string
	Filename    string
	Body        []byte
}

// parts walks a message's MIME tree and returns its leaves in order.
func parts(t *testing.T, data []byte) (netmail.Header, []part) {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	var out []part
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
		p := part{ContentType: ct, MediaType: mt, Body: raw}
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

// decodeHeader decodes RFC 2047 encoded words.
func decodeHeader(t *testing.T, v string) string {
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
