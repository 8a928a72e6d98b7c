package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mail"
)

// apiPublicURL is the harness server's public address, in mailed links.
const apiPublicURL = "https://fablab.test"

// startMail gives the harness the real mail chain into an outbox: the
// notifier and the queue, drained at cleanup.
func (h *apiHarness) startMail(t testing.TB) Mailer {
	t.Helper()
	h.outbox = mail.NewOutbox(0)
	q, err := mail.NewQueue(h.outbox, mail.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	return mail.NewNotifier(mail.NotifierConfig{Store: h.store, Queue: q, Outbox: h.outbox, PublicURL: apiPublicURL, From: "fabgate@fablab.test", Now: h.clock.Now})
}

// mailTo waits (polling the outbox, which the queue fills on a goroutine
// of its own) for the n-th message to to, and returns it with every
// message sent so far to that address.
func (h *apiHarness) mailTo(t testing.TB, to string, n int) (mail.Message, []mail.Message) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got []mail.Message
		for _, m := range h.outbox.Messages() {
			if m.To == to {
				got = append([]mail.Message{m}, got...) // oldest first
			}
		}
		if len(got) >= n {
			return got[n-1], got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages to %s, waited for %d", len(got), to, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tokenIn returns the token of the reset link in a message's text.
func tokenIn(t testing.TB, m mail.Message) string {
	t.Helper()
	i := strings.Index(m.Text, apiPublicURL+"/reset?token=")
	if i < 0 {
		t.Fatalf("no reset link in %q:\n%s", m.Subject, m.Text)
	}
	link := strings.Fields(m.Text[i:])[0]
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

// TestAPIInvitation: a member created without a password is mailed a link
// that sets it; one created with a password, or suspended, is not mailed.
func TestAPIInvitation(t *testing.T) {
	h := newAPIHarness(t)
	r := h.do(t, "POST", "/api/v1/members", h.staff.Token, map[string]any{"email": "new@fablab.test", "name": "New Maker", "group": "student", "language": "en"})
	if r.status != http.StatusCreated {
		t.Fatalf("create member: %d %s", r.status, r.body)
	}
	m, _ := h.mailTo(t, "new@fablab.test", 1)
	if m.Subject != "Welcome to "+apiLabName+": choose your password" || !strings.Contains(m.Text, "Hello New Maker,") {
		t.Errorf("invitation %q:\n%s", m.Subject, m.Text)
	}
	// Valid a week: Monday 9 March 2026, 08:00 in Paris.
	if !strings.Contains(m.Text, "until Monday 9 March 2026, 08:00") {
		t.Errorf("invitation does not say it is valid a week:\n%s", m.Text)
	}
	token := tokenIn(t, m)
	h.clock.Advance(6 * 24 * time.Hour)
	if r := h.do(t, "POST", "/api/v1/auth/reset-password", "", map[string]string{"token": token, "password": "a new password"}); r.status != http.StatusNoContent {
		t.Fatalf("reset with the invitation six days later: %d %s", r.status, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "new@fablab.test", "password": "a new password"}); r.status != http.StatusOK {
		t.Fatalf("login with the chosen password: %d %s", r.status, r.body)
	}
	h.staff.Token, h.staff.CSRF = h.login(t, h.staff)

	r = h.do(t, "POST", "/api/v1/members", h.staff.Token, map[string]any{"email": "pw@fablab.test", "name": "Has Password", "group": "student", "password": "a long password"})
	if r.status != http.StatusCreated {
		t.Fatalf("create member: %d %s", r.status, r.body)
	}
	r = h.do(t, "POST", "/api/v1/members", h.staff.Token, map[string]any{"email": "suspended@fablab.test", "name": "Suspended", "group": "student", "status": fablab.StatusSuspended})
	if r.status != http.StatusCreated {
		t.Fatalf("create member: %d %s", r.status, r.body)
	}
	// Mail goes in order: once a later message is there, an invitation
	// would have been too.
	h.do(t, "POST", "/api/v1/members", h.staff.Token, map[string]any{"email": "fence@fablab.test", "name": "Fence", "group": "student"})
	h.mailTo(t, "fence@fablab.test", 1)
	for _, m := range h.outbox.Messages() {
		if m.To == "pw@fablab.test" || m.To == "suspended@fablab.test" {
			t.Errorf("%s was mailed %q", m.To, m.Subject)
		}
	}
}

// TestAPIForgotPassword: the same answer for every address; a link for an
// active account only; throttled per account and per address.
func TestAPIForgotPassword(t *testing.T) {
	h := newAPIHarness(t)
	forgot := func(email string) apiResp {
		t.Helper()
		return h.do(t, "POST", "/api/v1/auth/forgot-password", "", map[string]string{"email": email})
	}
	if r := h.do(t, "PATCH", "/api/v1/members/"+h.bob.ID.String(), h.staff.Token, map[string]any{"status": fablab.StatusSuspended}); r.status != http.StatusOK {
		t.Fatalf("suspend bob: %d %s", r.status, r.body)
	}
	known := forgot("  Alice@FabLab.test ")
	for _, email := range []string{"nobody@fablab.test", h.bob.Email} {
		r := forgot(email)
		if r.status != http.StatusAccepted || string(r.body) != string(known.body) {
			t.Errorf("forgot %s: %d %s; for an existing account: %d %s", email, r.status, r.body, known.status, known.body)
		}
	}
	if known.status != http.StatusAccepted {
		t.Fatalf("forgot alice: %d %s", known.status, known.body)
	}
	m, _ := h.mailTo(t, h.alice.Email, 1)
	if m.Subject != apiLabName+" : nouveau mot de passe" || !strings.Contains(m.Text, "Bonjour Alice Maker,") || !strings.Contains(m.Text, "lundi 2 mars 2026 à 10:00") {
		t.Errorf("reset mail %q (valid 2 hours, in French):\n%s", m.Subject, m.Text)
	}
	// A fence: nothing was mailed for the unknown and suspended addresses.
	forgot(h.staff.Email)
	h.mailTo(t, h.staff.Email, 1)
	for _, m := range h.outbox.Messages() {
		if m.To != h.alice.Email && m.To != h.staff.Email {
			t.Errorf("mailed %s: %q", m.To, m.Subject)
		}
	}
	if r := h.do(t, "POST", "/api/v1/auth/reset-password", "", map[string]string{"token": tokenIn(t, m), "password": "alice new password"}); r.status != http.StatusNoContent {
		t.Fatalf("reset with the mailed link: %d %s", r.status, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": h.alice.Email, "password": "alice new password"}); r.status != http.StatusOK {
		t.Fatalf("login with the new password: %d", r.status)
	}

	// Per account: three requests, then a wait, for known and unknown
	// accounts alike.
	for _, email := range []string{h.alice.Email, "nobody@fablab.test"} {
		for range 2 {
			if r := forgot(email); r.status != http.StatusAccepted {
				t.Fatalf("forgot %s: %d", email, r.status)
			}
		}
		r := forgot(email)
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || r.problem(t).Code != fablab.ETOOMANY {
			t.Fatalf("4th request for %s: %d %s", email, r.status, r.body)
		}
	}
	if _, all := h.mailTo(t, h.alice.Email, 3); len(all) != 3 {
		t.Errorf("%d mails to alice, want 3 (the throttled request sends none)", len(all))
	}
	h.clock.Advance(16 * time.Minute)
	if r := forgot(h.alice.Email); r.status != http.StatusAccepted {
		t.Errorf("after the wait: %d %s", r.status, r.body)
	}

	// Per address: 10 requests in 15 minutes, over any accounts.
	h.clock.Advance(time.Hour)
	for i := range 10 {
		if r := forgot("someone" + string(rune('a'+i)) + "@fablab.test"); r.status != http.StatusAccepted {
			t.Fatalf("request %d from one address: %d", i+1, r.status)
		}
	}
	if r := forgot("someone.else@fablab.test"); r.status != http.StatusTooManyRequests {
		t.Errorf("11th request from one address: %d %s", r.status, r.body)
	}

	if r := forgot(""); r.status != http.StatusBadRequest {
		t.Errorf("empty email: %d", r.status)
	}
}

// TestAPIBookingMails: a booking made by anyone mails the member booked a
// confirmation with an .ics; a cancellation mails a notice.
func TestAPIBookingMails(t *testing.T) {
	h := newAPIHarness(t)
	start := apiAt(1, 10, 0) // Tuesday 3 March 2026, 10:00
	r := h.book(t, h.alice, h.laser.ID, start, start.Add(time.Hour))
	if r.status != http.StatusCreated {
		t.Fatalf("book: %d %s", r.status, r.body)
	}
	var b fablab.Booking
	r.decode(t, &b)
	m, _ := h.mailTo(t, h.alice.Email, 1)
	if m.Subject != "Réservation confirmée : Laser, mardi 3 mars 2026 à 10:00" || len(m.Attachments) != 1 || m.Attachments[0].Name != "reservation.ics" ||
		!strings.Contains(string(m.Attachments[0].Data), "UID:booking-"+b.ID.String()+"@fablab.test") {
		t.Errorf("confirmation %q %+v", m.Subject, m.Attachments)
	}

	// Staff book for bob: bob is mailed, not staff.
	r = h.do(t, "POST", "/api/v1/bookings", h.staff.Token, map[string]any{"machine_id": h.printer.ID.String(), "member_id": h.bob.ID.String(),
		"start": start.Format(time.RFC3339), "end": start.Add(time.Hour).Format(time.RFC3339)})
	if r.status != http.StatusCreated {
		t.Fatalf("staff book for bob: %d %s", r.status, r.body)
	}
	r.decode(t, &b)
	h.mailTo(t, h.bob.Email, 1)
	if r := h.do(t, "DELETE", "/api/v1/bookings/"+b.ID.String(), h.staff.Token, nil); r.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	m, _ = h.mailTo(t, h.bob.Email, 2)
	ics := string(m.Attachments[0].Data)
	if !strings.HasPrefix(m.Subject, "Réservation annulée : Printer") || !strings.Contains(ics, "METHOD:CANCEL") || !strings.Contains(ics, "STATUS:CANCELLED") ||
		!strings.Contains(ics, "SEQUENCE:1") || !strings.Contains(ics, "UID:booking-"+b.ID.String()+"@fablab.test") {
		t.Errorf("cancellation %q:\n%s", m.Subject, ics)
	}
	for _, m := range h.outbox.Messages() {
		if m.To == h.staff.Email {
			t.Errorf("staff were mailed %q", m.Subject)
		}
	}
}

// TestAPIOutbox: staff read the outbox; makers may not; without an outbox
// (mail by SMTP) the route says so.
func TestAPIOutbox(t *testing.T) {
	h := newAPIHarness(t)
	h.do(t, "POST", "/api/v1/auth/forgot-password", "", map[string]string{"email": h.alice.Email})
	h.mailTo(t, h.alice.Email, 1)
	for _, tc := range []struct {
		who    string
		token  string
		status int
	}{{"anonymous", "", http.StatusUnauthorized}, {"maker", h.alice.Token, http.StatusForbidden}, {"staff", h.staff.Token, http.StatusOK}, {"admin", h.admin.Token, http.StatusOK}} {
		r := h.do(t, "GET", "/api/v1/outbox", tc.token, nil)
		if r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.who, r.status, r.body, tc.status)
			continue
		}
		if r.status != http.StatusOK {
			continue
		}
		var msgs []outboxMessage
		r.decode(t, &msgs)
		if len(msgs) != 1 || msgs[0].To != h.alice.Email || !strings.Contains(msgs[0].Text, "/reset?token=") || msgs[0].Date.IsZero() || msgs[0].Attachments == nil {
			t.Errorf("%s reads %+v", tc.who, msgs)
		}
	}

	// Staff do not see the reset link of an admin's account; admins do.
	h.do(t, "POST", "/api/v1/auth/forgot-password", "", map[string]string{"email": h.admin.Email})
	h.mailTo(t, h.admin.Email, 1)
	for _, tc := range []struct {
		who   *apiAccount
		count int
	}{{h.staff, 1}, {h.admin, 2}} {
		var msgs []outboxMessage
		h.do(t, "GET", "/api/v1/outbox", tc.who.Token, nil).decode(t, &msgs)
		if len(msgs) != tc.count {
			t.Errorf("%s sees %d messages, want %d: %+v", tc.who.Email, len(msgs), tc.count, msgs)
		}
		for _, m := range msgs {
			if m.To == h.admin.Email && tc.who != h.admin {
				t.Errorf("%s reads the admin's reset link", tc.who.Email)
			}
		}
	}

	// A server whose mail goes out by SMTP has no outbox.
	q, err := mail.NewQueue(mail.NewOutbox(0), mail.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close(context.Background())
	s, err := New(Config{Store: h.store, Now: h.clock.Now, Registry: prometheus.NewRegistry(), Password: apiCheapPassword,
		Mail: mail.NewNotifier(mail.NotifierConfig{Store: h.store, Queue: q, PublicURL: apiPublicURL})})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/v1/outbox", nil)
	req.Header.Set("Authorization", "Bearer "+h.staff.Token)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "smtp_url") {
		t.Errorf("outbox with SMTP mail: %d %s", rec.Code, rec.Body)
	}
}
