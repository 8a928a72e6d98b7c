package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// URLHelp says what smtp_url accepts; configuration errors repeat it.
const URLHelp = "write outbox: (mail kept in the server for staff to read), " +
	"smtp://user:password@host:587 (STARTTLS when the server offers it; add ?tls=starttls to require it, " +
	"?tls=none for a local relay without TLS), or smtps://user:password@host:465 (TLS from the start); " +
	"?from=fablab@example.org sets the sender (default fabgate@ the public URL's host)"

// TLS modes of an smtp:// URL.
const (
	TLSOpportunistic = "opportunistic" // STARTTLS when the server offers it (smtp:// default)
	TLSStartTLS      = "starttls"      // STARTTLS required
	TLSNone          = "none"          // plain text, for a relay on the same host or network
	TLSImplicit      = "implicit"      // TLS from the first byte (smtps://)
)

// URL is a parsed smtp_url.
type URL struct {
	// Outbox is true for outbox:, which keeps mail in the server.
	Outbox bool
	Host   string
	Port   int
	// Username and Password authenticate with AUTH PLAIN when Username is
	// set. PLAIN is refused over a connection without TLS, except to
	// localhost.
	Username, Password string
	TLS                string // one of the TLS… modes
	From               string // the sender's address; empty: the caller's default
}

// ParseURL parses an smtp_url (see URLHelp); the empty string is outbox:.
func ParseURL(raw string) (URL, error) {
	if raw == "" || raw == "outbox:" {
		return URL{Outbox: true}, nil
	}
	bad := func(why string) (URL, error) {
		return URL{}, fmt.Errorf("%q %s; %s", redact(raw), why, URLHelp)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("is not a URL")
	}
	var out URL
	switch u.Scheme {
	case "smtp":
		out.TLS, out.Port = TLSOpportunistic, 587
	case "smtps":
		out.TLS, out.Port = TLSImplicit, 465
	default:
		return bad("has an unknown scheme")
	}
	if out.Host = u.Hostname(); out.Host == "" {
		return bad("has no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return bad("has a port out of 1–65535")
		}
		out.Port = n
	}
	if u.Path != "" && u.Path != "/" {
		return bad("has a path")
	}
	if u.User != nil {
		out.Username = u.User.Username()
		out.Password, _ = u.User.Password()
	}
	q := u.Query()
	for k := range q {
		if k != "tls" && k != "from" {
			return bad(fmt.Sprintf("has an unknown parameter %q", k))
		}
	}
	if t := q.Get("tls"); t != "" {
		if u.Scheme == "smtps" || (t != TLSStartTLS && t != TLSNone && t != TLSOpportunistic) {
			return bad("has a tls parameter other than starttls, none or opportunistic on smtp://")
		}
		out.TLS = t
	}
	if f := q.Get("from"); f != "" {
		a, err := netmail.ParseAddress(f)
		if err != nil {
			return bad("has a from parameter that is not a mail address")
		}
		out.From = a.Address
	}
	return out, nil
}

// redact hides the password of a URL in messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// DefaultFrom is the sender's address when smtp_url has no from: fabgate@
// the host people open the server at.
func DefaultFrom(publicURL string) string {
	host := "localhost"
	if u, err := url.Parse(publicURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	if net.ParseIP(host) != nil { // an address literal (RFC 5321)
		host = "[" + host + "]"
	}
	return "fabgate@" + host
}

// SMTP sends mail through an SMTP server, one connection per message (a
// lab sends a few hundred a day at most).
type SMTP struct {
	url     URL
	tls     *tls.Config
	timeout time.Duration
}

// SMTPOptions are the optional parts of an SMTP sender.
type SMTPOptions struct {
	// TLS is the client TLS configuration (default: the system's roots,
	// TLS 1.2 at least, the URL's host as server name).
	TLS *tls.Config
	// Timeout bounds connecting and each command (default 30 s).
	Timeout time.Duration
}

// NewSMTP returns a Sender for u (u.From must be set: see DefaultFrom).
func NewSMTP(u URL, opts SMTPOptions) (*SMTP, error) {
	if u.Outbox || u.Host == "" {
		return nil, errors.New("mail: NewSMTP needs an smtp:// or smtps:// URL")
	}
	if u.From == "" {
		return nil, errors.New("mail: the SMTP sender needs a from address")
	}
	t := opts.TLS
	if t == nil {
		t = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		t = t.Clone()
	}
	if t.ServerName == "" {
		t.ServerName = u.Host
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	return &SMTP{url: u, tls: t, timeout: opts.Timeout}, nil
}

// Send delivers m through the SMTP server.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg, err := s.message(m)
	if err != nil {
		return err
	}
	opts := []gomail.Option{gomail.WithPort(s.url.Port), gomail.WithTimeout(s.timeout), gomail.WithTLSConfig(s.tls)}
	switch s.url.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.url.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(s.url.Username), gomail.WithPassword(s.url.Password))
	}
	c, err := gomail.NewClient(s.url.Host, opts...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("smtp %s:%d: %w", s.url.Host, s.url.Port, err)
	}
	return nil
}

// message builds the MIME message: text/plain with a text/html
// alternative, then the attachments.
func (s *SMTP) message(m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	var err error
	if m.FromName != "" {
		err = msg.FromFormat(m.FromName, s.url.From)
	} else {
		err = msg.From(s.url.From)
	}
	if err != nil {
		return nil, fmt.Errorf("mail from %q: %w", s.url.From, err)
	}
	if m.ToName != "" {
		err = msg.AddToFormat(m.ToName, m.To)
	} else {
		err = msg.To(m.To)
	}
	if err != nil {
		return nil, fmt.Errorf("mail to %q: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageID()
	if m.Date.IsZero() {
		msg.SetDate()
	} else {
		msg.SetDateWithValue(m.Date)
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	for _, a := range m.Attachments {
		if err := msg.AttachReader(a.Name, bytes.NewReader(a.Data), gomail.WithFileContentType(gomail.ContentType(a.ContentType))); err != nil {
			return nil, fmt.Errorf("attach %s: %w", a.Name, err)
		}
	}
	return msg, nil
}
