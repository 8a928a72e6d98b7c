package mail

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/mail/mailtest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want URL
		err  string // part of the error, "" for none
	}{
		{"", URL{Outbox: true}, ""},
		{"outbox:", URL{Outbox: true}, ""},
		{"smtp://mail.example.org", URL{Host: "mail.example.org", Port: 587, TLS: TLSOpportunistic}, ""},
		{"smtp://u:p%40ss@mail.example.org:2525?from=lab@example.org", URL{Host: "mail.example.org", Port: 2525, Username: "u", Password: "p@ss", TLS: TLSOpportunistic, From: "lab@example.org"}, ""},
		{"smtp://relay:25?tls=none", URL{Host: "relay", Port: 25, TLS: TLSNone}, ""},
		{"smtp://mail.example.org?tls=starttls", URL{Host: "mail.example.org", Port: 587, TLS: TLSStartTLS}, ""},
		{"smtps://u:p@mail.example.org", URL{Host: "mail.example.org", Port: 465, Username: "u", Password: "p", TLS: TLSImplicit}, ""},
		{"smtps://mail.example.org?tls=none", URL{}, "tls parameter"},
		{"smtp://mail.example.org?tls=maybe", URL{}, "tls parameter"},
		{"smtp://mail.example.org?form=x", URL{}, `unknown parameter "form"`},
		{"smtp://mail.example.org?from=not-an-address", URL{}, "from parameter"},
		{"smtp://mail.example.org:99999", URL{}, "port"},
		{"smtp:///nohost", URL{}, "no host"},
		{"smtp://mail.example.org/path", URL{}, "path"},
		{"http://mail.example.org", URL{}, "unknown scheme"},
		{"mail.example.org:587", URL{}, "unknown scheme"},
		{"smtp://user:hunter2@mail.example.org/x", URL{}, "xxxxx"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := ParseURL(tc.raw)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "outbox:") {
					t.Fatalf("ParseURL(%q) error = %v, want one containing %q and the accepted forms", tc.raw, err, tc.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseURL(%q) = %+v, %v; want %+v", tc.raw, got, err, tc.want)
			}
		})
	}
}

func TestDefaultFrom(t *testing.T) {
	for in, want := range map[string]string{
		"https://fablab.example.org":  "fabgate@fablab.example.org",
		"http://fablab.example:8080":  "fabgate@fablab.example",
		"http://127.0.0.1:8080":       "fabgate@[127.0.0.1]",
		"":                            "fabgate@localhost",
		"https://[2001:db8::1]:8443/": "fabgate@[2001:db8::1]",
	} {
		if got := DefaultFrom(in); got != want {
			t.Errorf("DefaultFrom(%q) = %q, want %q", in, got, want)
		}
	}
}

// testMessage is a small message with an attachment.
func testMessage() Message {
	return Message{
		FromName: "FabLab Parc Tech", To: "alice@fablab.test", ToName: "Alice Maker",
		Subject: "Réservation confirmée : Laser", Date: time.Date(2026, 12, 2, 13, 30, 0, 0, time.UTC),
		Text: "Bonjour Alice,\n\nvotre réservation est confirmée.\n", HTML: "<p>Bonjour Alice,</p>",
		Attachments: []Attachment{{Name: "reservation.ics", ContentType: "text/calendar; charset=utf-8; method=REQUEST", Data: []byte("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")}},
	}
}

// TestSMTPSend sends through each way of speaking TLS to a real server, and
// reads back the envelope, the headers and the parts.
func TestSMTPSend(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    mailtest.Mode
		scheme  string
		query   string
		wantTLS bool
	}{
		{"STARTTLS offered and taken", mailtest.StartTLS, "smtp", "", true},
		{"STARTTLS required", mailtest.StartTLS, "smtp", "tls=starttls", true},
		{"local relay without TLS", mailtest.Plain, "smtp", "tls=none", false},
		{"no STARTTLS offered, opportunistic", mailtest.Plain, "smtp", "", false},
		{"implicit TLS", mailtest.Implicit, "smtps", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, tc.mode)
			u, err := ParseURL(srv.URL(tc.scheme, tc.query+"&from=lab@fablab.test"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewSMTP(u, SMTPOptions{TLS: &tls.Config{RootCAs: srv.Roots}, Timeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(context.Background(), testMessage()); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := srv.Wait(t, 1)[0]
			if got.From != "lab@fablab.test" || len(got.To) != 1 || got.To[0] != "alice@fablab.test" {
				t.Errorf("envelope from %q to %v", got.From, got.To)
			}
			if got.TLS != tc.wantTLS || got.User != mailtest.User {
				t.Errorf("session TLS %v user %q, want TLS %v user %q", got.TLS, got.User, tc.wantTLS, mailtest.User)
			}
			h, ps := mailtest.Parts(t, got.Data)
			if s := mailtest.DecodeHeader(t, h.Get("Subject")); s != "Réservation confirmée : Laser" {
				t.Errorf("Subject = %q", s)
			}
			if from := mailtest.DecodeHeader(t, h.Get("From")); from != `"FabLab Parc Tech" <lab@fablab.test>` {
				t.Errorf("From = %q", from)
			}
			if to := mailtest.DecodeHeader(t, h.Get("To")); to != `"Alice Maker" <alice@fablab.test>` {
				t.Errorf("To = %q", to)
			}
			if d, err := h.Date(); err != nil || !d.Equal(testMessage().Date) {
				t.Errorf("Date = %v, %v", d, err)
			}
			if h.Get("Message-Id") == "" {
				t.Error("no Message-ID")
			}
			if len(ps) != 3 || ps[0].MediaType != "text/plain" || ps[1].MediaType != "text/html" || ps[2].MediaType != "text/calendar" {
				t.Fatalf("parts %+v, want text/plain, text/html, text/calendar", ps)
			}
			// Mail ends lines with CRLF.
			if text := strings.ReplaceAll(string(ps[0].Body), "\r\n", "\n"); text != testMessage().Text || string(ps[1].Body) != testMessage().HTML {
				t.Errorf("bodies %q and %q", ps[0].Body, ps[1].Body)
			}
			if ps[2].Disposition != "attachment" || ps[2].Filename != "reservation.ics" || !strings.Contains(ps[2].ContentType, "method=REQUEST") ||
				string(ps[2].Body) != string(testMessage().Attachments[0].Data) {
				t.Errorf("attachment %+v", ps[2])
			}
		})
	}
}

// TestSMTPRefusals: what must not be sent is not.
func TestSMTPRefusals(t *testing.T) {
	plain := mailtest.Start(t, mailtest.Plain)
	tlsSrv := mailtest.Start(t, mailtest.StartTLS)
	for _, tc := range []struct {
		name string
		srv  *mailtest.Server
		url  string
		tls  *tls.Config
		want string
	}{
		{"STARTTLS required but not offered", plain, plain.URL("smtp", "tls=starttls"), nil, "STARTTLS"},
		{"wrong password", plain, strings.Replace(plain.URL("smtp", "tls=none"), "s3cret", "wrong", 1), nil, "auth"},
		{"untrusted certificate", tlsSrv, tlsSrv.URL("smtp", "tls=starttls"), &tls.Config{}, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			u.From = "lab@fablab.test"
			cfg := tc.tls
			if cfg == nil {
				cfg = &tls.Config{RootCAs: tc.srv.Roots}
			}
			s, err := NewSMTP(u, SMTPOptions{TLS: cfg, Timeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), testMessage())
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
				t.Fatalf("send error = %v, want one about %s", err, tc.want)
			}
			if n := len(tc.srv.Messages()); n != 0 {
				t.Errorf("the server accepted %d messages", n)
			}
		})
	}
}
