package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goical "github.com/emersion/go-ical"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mail/mailtest"
)

var paris = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err)
	}
	return loc
}()

// testLab is a lab in a bbolt file: a laser, a French and an English member.
type testLab struct {
	path   string
	clock  *bolttest.Clock
	store  *bolt.Store
	laser  fablab.Machine
	fr, en fablab.Member
}

const testPublicURL = "https://fablab.example.org"

// newTestLab seeds a lab at Monday 30 November 2026, 10:00 in Paris.
func newTestLab(t *testing.T) *testLab {
	t.Helper()
	ctx := context.Background()
	l := &testLab{path: filepath.Join(t.TempDir(), "fabgate.db"), clock: bolttest.NewClock(time.Date(2026, 11, 30, 10, 0, 0, 0, paris))}
	l.open(t)
	if _, err := l.store.UpdateSettings(ctx, func(s *fablab.Settings) error {
		s.Name = "FabLab Parc Tech"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var err error
	if l.laser, err = l.store.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter}); err != nil {
		t.Fatal(err)
	}
	if l.fr, err = l.store.CreateMember(ctx, fablab.Member{Email: "alice@fablab.test", Name: "Alice Maker", Group: "student", Language: "fr"}); err != nil {
		t.Fatal(err)
	}
	if l.en, err = l.store.CreateMember(ctx, fablab.Member{Email: "bob@fablab.test", Name: "Bob Maker", Group: "student", Language: "en"}); err != nil {
		t.Fatal(err)
	}
	return l
}

// open opens the lab's file (again, after close: a restart).
func (l *testLab) open(t *testing.T) {
	t.Helper()
	s, err := bolt.Open(l.path, bolt.Options{Timeout: 5 * time.Second, Now: l.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	l.store = s
	t.Cleanup(func() { s.Close() })
}

// restart closes the file and opens it again.
func (l *testLab) restart(t *testing.T) {
	t.Helper()
	if err := l.store.Check(); err != nil {
		t.Fatal(err)
	}
	if err := l.store.Close(); err != nil {
		t.Fatal(err)
	}
	l.open(t)
}

// book books the laser for m, start to end (Paris wall times).
func (l *testLab) book(t *testing.T, m fablab.Member, start, end time.Time) fablab.Booking {
	t.Helper()
	b, err := l.store.CreateBooking(context.Background(), fablab.Booking{MachineID: l.laser.ID, MemberID: m.ID, Start: start, End: end, CreatedBy: m.ID},
		func(bolt.BookingContext) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// notifier returns a notifier for the lab's current store, queueing into
// an outbox that Close drains.
func (l *testLab) notifier(t *testing.T, q Enqueuer, out *Outbox) *Notifier {
	return NewNotifier(NotifierConfig{Store: l.store, Queue: q, Outbox: out, PublicURL: testPublicURL, From: "lab@fablab.test", Now: l.clock.Now})
}

// parseICS reads back the one event of an .ics attachment.
func parseICS(t *testing.T, data []byte) (*goical.Calendar, goical.Event) {
	t.Helper()
	cal, err := goical.NewDecoder(bytes.NewReader(data)).Decode()
	if err != nil {
		t.Fatalf("parse .ics: %v\n%s", err, data)
	}
	evs := cal.Events()
	if len(evs) != 1 {
		t.Fatalf("%d events in the .ics, want 1", len(evs))
	}
	return cal, evs[0]
}

// TestBookingMailsOverSMTP sends a French confirmation and an English
// cancellation through a real SMTP server and reads them back: headers,
// text in the member's language and lab time, and the .ics.
func TestBookingMailsOverSMTP(t *testing.T) {
	l := newTestLab(t)
	srv := mailtest.Start(t, mailtest.StartTLS)
	u, err := ParseURL(srv.URL("smtp", "from=lab@fablab.test"))
	if err != nil {
		t.Fatal(err)
	}
	sender, err := NewSMTP(u, SMTPOptions{TLS: &tls.Config{RootCAs: srv.Roots}, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQueue(sender, QueueConfig{Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close(context.Background())
	n := l.notifier(t, q, nil)
	if _, ok := n.Outbox(); ok {
		t.Error("an SMTP notifier reports an outbox")
	}

	// Wednesday 2 December 2026, 14:30–16:00 in Paris (13:30 UTC).
	start, end := time.Date(2026, 12, 2, 14, 30, 0, 0, paris), time.Date(2026, 12, 2, 16, 0, 0, 0, paris)
	fr := l.book(t, l.fr, start, end)
	n.BookingConfirmed(context.Background(), fr)
	got := srv.Wait(t, 1)[0]
	if got.To[0] != "alice@fablab.test" {
		t.Errorf("sent to %v", got.To)
	}
	h, ps := mailtest.Parts(t, got.Data)
	if s := mailtest.DecodeHeader(t, h.Get("Subject")); s != "Réservation confirmée : Laser, mercredi 2 décembre 2026 à 14:30" {
		t.Errorf("Subject = %q", s)
	}
	if len(ps) != 3 {
		t.Fatalf("%d parts, want text, html, ics", len(ps))
	}
	text := strings.ReplaceAll(string(ps[0].Body), "\r\n", "\n")
	for _, want := range []string{"Bonjour Alice Maker,", "Machine : Laser", "Début : mercredi 2 décembre 2026 à 14:30", "Fin : 16:00", testPublicURL + "/"} {
		if !strings.Contains(text, want) {
			t.Errorf("French text lacks %q:\n%s", want, text)
		}
	}
	if html := string(ps[1].Body); !strings.Contains(html, `<html lang="fr">`) || !strings.Contains(html, "<td>mercredi 2 décembre 2026 à 14:30</td>") {
		t.Errorf("HTML alternative:\n%s", html)
	}
	if ps[2].Filename != "reservation.ics" || !strings.Contains(ps[2].ContentType, "method=REQUEST") {
		t.Errorf("attachment %q %q", ps[2].Filename, ps[2].ContentType)
	}
	cal, ev := parseICS(t, ps[2].Body)
	checkEvent(t, cal, ev, "REQUEST", "CONFIRMED", "", "booking-"+fr.ID.String()+"@fablab.example.org", start, end)

	// The English member's booking, cancelled.
	en := l.book(t, l.en, start.Add(2*time.Hour), end.Add(2*time.Hour))
	en, err = l.store.SetBookingState(context.Background(), en.ID, fablab.BookingCancelled, l.en.ID, func(fablab.Machine, fablab.Booking) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	n.BookingCancelled(context.Background(), en)
	got = srv.Wait(t, 2)[1]
	h, ps = mailtest.Parts(t, got.Data)
	if s := mailtest.DecodeHeader(t, h.Get("Subject")); s != "Booking cancelled: Laser, Wednesday 2 December 2026, 16:30" {
		t.Errorf("Subject = %q", s)
	}
	text = strings.ReplaceAll(string(ps[0].Body), "\r\n", "\n")
	for _, want := range []string{"Hello Bob Maker,", "is cancelled", "Start: Wednesday 2 December 2026, 16:30", "End: 18:00"} {
		if !strings.Contains(text, want) {
			t.Errorf("English text lacks %q:\n%s", want, text)
		}
	}
	if ps[2].Filename != "booking.ics" || !strings.Contains(ps[2].ContentType, "method=CANCEL") {
		t.Errorf("attachment %q %q", ps[2].Filename, ps[2].ContentType)
	}
	cal, ev = parseICS(t, ps[2].Body)
	checkEvent(t, cal, ev, "CANCEL", "CANCELLED", "1", "booking-"+en.ID.String()+"@fablab.example.org", start.Add(2*time.Hour), end.Add(2*time.Hour))
}

func checkEvent(t *testing.T, cal *goical.Calendar, ev goical.Event, method, status, seq, uid string, start, end time.Time) {
	t.Helper()
	if got := cal.Props.Get(goical.PropMethod).Value; got != method {
		t.Errorf("METHOD = %q, want %q", got, method)
	}
	if got, _ := ev.Props.Text(goical.PropUID); got != uid {
		t.Errorf("UID = %q, want %q", got, uid)
	}
	if got := ev.Props.Get(goical.PropStatus).Value; got != status {
		t.Errorf("STATUS = %q, want %q", got, status)
	}
	gotSeq := ""
	if p := ev.Props.Get(goical.PropSequence); p != nil {
		gotSeq = p.Value
	}
	if gotSeq != seq {
		t.Errorf("SEQUENCE = %q, want %q", gotSeq, seq)
	}
	s, err := ev.DateTimeStart(time.UTC)
	if err != nil || !s.Equal(start) {
		t.Errorf("DTSTART = %v (%v), want %v", s, err, start)
	}
	e, err := ev.DateTimeEnd(time.UTC)
	if err != nil || !e.Equal(end) {
		t.Errorf("DTEND = %v (%v), want %v", e, err, end)
	}
	if got := ev.Props.Get(goical.PropOrganizer).Value; got != "mailto:lab@fablab.test" {
		t.Errorf("ORGANIZER = %q", got)
	}
	if got, _ := ev.Props.Text(goical.PropSummary); got != "Laser — FabLab Parc Tech" {
		t.Errorf("SUMMARY = %q", got)
	}
}

// TestReminderOnceAcrossRestart moves the clock through a booking's
// reminder window: one reminder, at the right time, never a second one —
// not on the next run, nor after the data file is closed and opened again.
func TestReminderOnceAcrossRestart(t *testing.T) {
	l := newTestLab(t)
	ctx := context.Background()
	// Booked on Monday for Wednesday 14:30; another booked Wednesday at
	// 14:00 for 14:45 (its confirmation is fresh: no reminder); a third
	// cancelled.
	start := time.Date(2026, 12, 2, 14, 30, 0, 0, paris)
	b := l.book(t, l.fr, start, start.Add(10*time.Minute))
	cancelled := l.book(t, l.en, start.Add(20*time.Minute), start.Add(30*time.Minute))
	if _, err := l.store.SetBookingState(ctx, cancelled.ID, fablab.BookingCancelled, l.en.ID, func(fablab.Machine, fablab.Booking) error { return nil }); err != nil {
		t.Fatal(err)
	}
	l.clock.Set(time.Date(2026, 12, 2, 14, 0, 0, 0, paris))
	late := l.book(t, l.en, start.Add(15*time.Minute), start.Add(20*time.Minute))

	out := NewOutbox(0)
	q := outboxQueue(t, out)
	run := func(at time.Time) int {
		t.Helper()
		l.clock.Set(at)
		n, err := l.notifier(t, q, out).RemindDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := run(time.Date(2026, 12, 2, 13, 29, 0, 0, paris)); n != 0 {
		t.Fatalf("%d reminders 61 minutes before the start", n)
	}
	if n := run(time.Date(2026, 12, 2, 13, 31, 0, 0, paris)); n != 1 {
		t.Fatalf("%d reminders 59 minutes before the start, want 1", n)
	}
	if n := run(time.Date(2026, 12, 2, 13, 32, 0, 0, paris)); n != 0 {
		t.Fatalf("%d reminders on the next run, want 0", n)
	}
	l.restart(t)
	for _, at := range []time.Time{time.Date(2026, 12, 2, 13, 33, 0, 0, paris), time.Date(2026, 12, 2, 14, 29, 0, 0, paris)} {
		if n := run(at); n != 0 {
			t.Fatalf("%d reminders after a restart, at %v", n, at)
		}
	}
	if err := q.Close(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := out.Messages()
	if len(msgs) != 1 {
		t.Fatalf("outbox holds %d messages, want the one reminder", len(msgs))
	}
	m := msgs[0]
	if m.To != "alice@fablab.test" || m.Subject != "Rappel : Laser à 14:30" || !strings.Contains(m.Text, "Début : mercredi 2 décembre 2026 à 14:30") ||
		!strings.Contains(m.Text, "dans les 15 minutes") {
		t.Errorf("reminder to %s %q:\n%s", m.To, m.Subject, m.Text)
	}
	got, err := l.store.Booking(ctx, b.ID)
	if err != nil || got.RemindedAt == nil || !got.RemindedAt.Equal(time.Date(2026, 12, 2, 13, 31, 0, 0, paris)) {
		t.Errorf("booking reminded_at = %v (%v)", got.RemindedAt, err)
	}
	if got, _ := l.store.Booking(ctx, late.ID); got.RemindedAt != nil {
		t.Errorf("a booking made within the hour was reminded")
	}
}

// TestRender renders every kind in both languages: subjects on one line,
// names escaped in HTML, nothing left blank.
func TestRender(t *testing.T) {
	v := View{Lab: "FabLab", PublicURL: testPublicURL, Name: "<b>Eve</b>\r\nBcc: x@example.org", Link: testPublicURL + "/reset?token=abc",
		Expires: "demain", Machine: "Laser", Start: "lundi", StartTime: "14:30", End: "15:00", Release: 15}
	for _, kind := range kinds {
		for _, lang := range Languages {
			v.Lang = lang
			subject, text, html, err := Render(kind, v)
			if err != nil {
				t.Fatalf("%s.%s: %v", kind, lang, err)
			}
			if subject == "" || strings.ContainsAny(subject, "\r\n") {
				t.Errorf("%s.%s subject %q", kind, lang, subject)
			}
			if !strings.Contains(text, "<b>Eve</b>") || strings.HasPrefix(text, "\n") {
				t.Errorf("%s.%s text:\n%s", kind, lang, text)
			}
			if strings.Contains(html, "<b>Eve") || !strings.Contains(html, "&lt;b&gt;Eve&lt;/b&gt;") || !strings.Contains(html, `lang="`+lang+`"`) {
				t.Errorf("%s.%s html does not escape the name:\n%s", kind, lang, html)
			}
			if (kind == KindInvitation || kind == KindReset) && (!strings.Contains(text, v.Link) || !strings.Contains(html, `href="`+v.Link+`"`)) {
				t.Errorf("%s.%s lacks the link", kind, lang)
			}
		}
	}
	// A language without templates gets French.
	v.Lang = "de"
	if s, _, _, err := Render(KindReset, v); err != nil || !strings.Contains(s, "nouveau mot de passe") {
		t.Errorf("German falls back to %q, %v", s, err)
	}
}

// TestInvitationAndNoShow: the link mails and the no-show notice, through
// the outbox.
func TestInvitationAndNoShow(t *testing.T) {
	l := newTestLab(t)
	out := NewOutbox(0)
	q := outboxQueue(t, out)
	n := l.notifier(t, q, out)
	exp := time.Date(2026, 12, 7, 10, 0, 0, 0, paris)
	n.Invitation(context.Background(), l.en, testPublicURL+"/reset?token=tok", exp)
	n.PasswordReset(context.Background(), l.fr, testPublicURL+"/reset?token=tok2", exp)
	b := l.book(t, l.fr, time.Date(2026, 12, 2, 14, 30, 0, 0, paris), time.Date(2026, 12, 2, 15, 0, 0, 0, paris))
	n.NotifyNoShow(context.Background(), b)
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	msgs, ok := n.Outbox()
	if !ok || len(msgs) != 3 {
		t.Fatalf("outbox %d messages, %v", len(msgs), ok)
	}
	noShow, reset, inv := msgs[0], msgs[1], msgs[2]
	if inv.To != "bob@fablab.test" || inv.Subject != "Welcome to FabLab Parc Tech: choose your password" ||
		!strings.Contains(inv.Text, testPublicURL+"/reset?token=tok\n") || !strings.Contains(inv.Text, "until Monday 7 December 2026, 10:00") {
		t.Errorf("invitation %q:\n%s", inv.Subject, inv.Text)
	}
	if reset.To != "alice@fablab.test" || reset.Subject != "FabLab Parc Tech : nouveau mot de passe" ||
		!strings.Contains(reset.Text, "/reset?token=tok2") || !strings.Contains(reset.Text, "jusqu'au lundi 7 décembre 2026 à 10:00") {
		t.Errorf("reset %q:\n%s", reset.Subject, reset.Text)
	}
	if noShow.Subject != "Réservation non honorée : Laser, mercredi 2 décembre 2026 à 14:30" || len(noShow.Attachments) != 0 {
		t.Errorf("no-show %q", noShow.Subject)
	}
}

// outboxQueue is a queue into out; Close it to have every message there.
func outboxQueue(t *testing.T, out *Outbox) *Queue {
	t.Helper()
	q, err := NewQueue(out, QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	return q
}

// TestReleaseNoShows: a booking nobody claimed within the machine's
// release time becomes a no-show, frees its slot and mails its member,
// once; a booking claimed by a session (open or ended) stays.
func TestReleaseNoShows(t *testing.T) {
	l := newTestLab(t)
	ctx := context.Background()
	at := func(hh, mm int) time.Time { return time.Date(2026, 12, 2, hh, mm, 0, 0, paris) }
	missed := l.book(t, l.fr, at(14, 30), at(15, 0))
	claimed := l.book(t, l.en, at(15, 30), at(16, 0))
	out := NewOutbox(0)
	q := outboxQueue(t, out)
	run := func(now time.Time) int {
		t.Helper()
		l.clock.Set(now)
		n, err := l.notifier(t, q, out).ReleaseNoShows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The laser releases after 15 minutes (the default rules).
	if n := run(at(14, 44)); n != 0 {
		t.Fatalf("%d no-shows 14 minutes after the start", n)
	}
	if n := run(at(14, 45)); n != 1 {
		t.Fatalf("%d no-shows 15 minutes after the start, want 1", n)
	}
	if n := run(at(14, 46)); n != 0 {
		t.Fatalf("marked again: %d", n)
	}
	if b, _ := l.store.Booking(ctx, missed.ID); b.State != fablab.BookingNoShow {
		t.Errorf("missed booking is %s", b.State)
	}
	if occ, err := l.store.Occupied(ctx, l.laser.ID, at(14, 30), at(15, 0)); err != nil || len(occ) != 0 {
		t.Errorf("the no-show still holds its slot: %v %v", occ, err)
	}

	// Bob taps in at 15:32 and out at 15:40: his booking is claimed.
	sess, err := l.store.OpenSession(ctx, fablab.Session{MachineID: l.laser.ID, MemberID: l.en.ID, BookingID: claimed.ID, DeviceID: "laser-1",
		Started: at(15, 32), Until: at(16, 0), Billable: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := run(at(15, 38)); n != 0 {
		t.Fatalf("a booking with an open session marked: %d", n)
	}
	if _, err := l.store.CloseSession(ctx, sess.ID, at(15, 40), fablab.EndTapOut, 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	l.restart(t)
	if n := run(at(15, 50)); n != 0 {
		t.Fatalf("a booking with an ended session marked: %d", n)
	}
	if b, _ := l.store.Booking(ctx, claimed.ID); b.State != fablab.BookingConfirmed {
		t.Errorf("claimed booking is %s", b.State)
	}
	if err := q.Close(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := out.Messages()
	if len(msgs) != 1 || msgs[0].To != "alice@fablab.test" || msgs[0].Subject != "Réservation non honorée : Laser, mercredi 2 décembre 2026 à 14:30" ||
		!strings.Contains(msgs[0].Text, "dans les 15 minutes") {
		t.Fatalf("mail sent: %+v", msgs)
	}
}
