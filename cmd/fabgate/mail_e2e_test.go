package main

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/mail/mailtest"
)

// outboxEntry is a message of GET /api/v1/outbox.
type outboxEntry struct {
	To          string   `json:"to"`
	Subject     string   `json:"subject"`
	Text        string   `json:"text"`
	Attachments []string `json:"attachments"`
}

// resetToken returns the token of the reset link base/reset?token=… in text.
func resetToken(t *testing.T, text, base string) string {
	t.Helper()
	i := strings.Index(text, base+"/reset?token=")
	if i < 0 {
		t.Fatalf("no link to %s/reset in:\n%s", base, text)
	}
	u, err := url.Parse(strings.Fields(text[i:])[0])
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

// TestE2EMailOutbox: the demo lab keeps its mail in the outbox, where
// staff read the reset link a maker asked for, and the link works.
func TestE2EMailOutbox(t *testing.T) {
	srv := startServerAt(t, clockAt(labTime), "--data", t.TempDir(), "--demo")
	maker, staff := demoAccount(t, "maker"), demoAccount(t, "staff")
	if st := call(t, "POST", srv.url+"/api/v1/auth/forgot-password", "", map[string]string{"email": maker.Email}, nil); st != 202 {
		t.Fatalf("forgot-password: %d", st)
	}
	staffTok := login(t, srv.url, staff.Email, staff.Password)
	var got outboxEntry
	deadline := time.Now().Add(20 * time.Second)
	for got.To == "" {
		var msgs []outboxEntry
		if st := call(t, "GET", srv.url+"/api/v1/outbox", staffTok, nil, &msgs); st != 200 {
			t.Fatalf("outbox: %d", st)
		}
		for _, m := range msgs {
			if m.To == maker.Email {
				got = m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail to %s in the outbox: %+v", maker.Email, msgs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	token := resetToken(t, got.Text, srv.url) // the public URL defaults to the HTTP address
	if st := call(t, "POST", srv.url+"/api/v1/auth/reset-password", "", map[string]string{"token": token, "password": "a brand new password"}, nil); st != 204 {
		t.Fatalf("reset-password: %d", st)
	}
	login(t, srv.url, maker.Email, "a brand new password")
}

// TestE2EMailSMTP: with --smtp-url, mail goes to the SMTP server, there is
// no outbox, and shutdown sends what is still queued.
func TestE2EMailSMTP(t *testing.T) {
	smtpSrv := mailtest.Start(t, mailtest.Plain)
	const public = "https://fablab.example.org"
	srv := startServerAt(t, clockAt(labTime), "--data", t.TempDir(), "--demo", "--public-url", public,
		"--smtp-url", smtpSrv.URL("smtp", "tls=none&from=lab@fablab.example.org"))
	maker, staff := demoAccount(t, "maker"), demoAccount(t, "staff")
	if st := call(t, "POST", srv.url+"/api/v1/auth/forgot-password", "", map[string]string{"email": maker.Email}, nil); st != 202 {
		t.Fatalf("forgot-password: %d", st)
	}
	got := smtpSrv.Wait(t, 1)[0]
	if got.From != "lab@fablab.example.org" || len(got.To) != 1 || got.To[0] != maker.Email || got.User != mailtest.User {
		t.Errorf("envelope from %s to %v as %q", got.From, got.To, got.User)
	}
	_, parts := mailtest.Parts(t, got.Data)
	resetToken(t, strings.ReplaceAll(string(parts[0].Body), "\r\n", "\n"), public)

	staffTok := login(t, srv.url, staff.Email, staff.Password)
	if st := call(t, "GET", srv.url+"/api/v1/outbox", staffTok, nil, nil); st != 404 {
		t.Errorf("outbox with SMTP: %d, want 404", st)
	}
	// Queued just before shutdown: shutdown waits for it.
	smtpSrv.Refuse(1) // one retry, 5 s later: well within the drain time
	if st := call(t, "POST", srv.url+"/api/v1/auth/forgot-password", "", map[string]string{"email": staff.Email}, nil); st != 202 {
		t.Fatalf("forgot-password: %d", st)
	}
	srv.shutdown(t)
	msgs := smtpSrv.Messages()
	if len(msgs) != 2 || msgs[1].To[0] != staff.Email {
		t.Fatalf("the SMTP server holds %d messages after shutdown, want 2 (the last to %s)", len(msgs), staff.Email)
	}
}
