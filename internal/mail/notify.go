package mail

import (
	"context"
	"log/slog"
	"net/url"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/i18n"
	"github.com/fabgate/fabgate/internal/ical"
)

// Store is what a Notifier reads, and where it records reminders sent.
type Store interface {
	Settings(ctx context.Context) (fablab.Settings, error)
	Member(ctx context.Context, id fablab.ID) (fablab.Member, error)
	Machine(ctx context.Context, id fablab.ID) (fablab.Machine, error)
	// BookingsStarting lists the confirmed bookings of every machine that
	// start within [from, to).
	BookingsStarting(ctx context.Context, from, to time.Time) ([]fablab.Booking, error)
	// MarkReminded records durably that a confirmed booking's reminder is
	// sent, and reports false when it was already recorded (or the booking
	// is no longer confirmed).
	MarkReminded(ctx context.Context, id fablab.ID, at time.Time) (bool, error)
	// MarkNoShows marks as no_show (releasing their slots) the confirmed
	// bookings that started within horizon before now and were not
	// claimed in time (fablab.NoShowDue), and returns them.
	MarkNoShows(ctx context.Context, now time.Time, horizon time.Duration) ([]fablab.Booking, error)
}

// Enqueuer takes messages to send later (a Queue).
type Enqueuer interface {
	Enqueue(m Message) bool
}

// DefaultReminderLead is how long before a booking's start its reminder
// is sent: an hour is time enough to come to the lab, or to cancel and
// free the slot.
const DefaultReminderLead = time.Hour

// NotifierConfig configures a Notifier.
type NotifierConfig struct {
	Store Store
	Queue Enqueuer
	// Outbox is the outbox the queue sends to, for the staff to read; nil
	// when mail goes out by SMTP.
	Outbox *Outbox
	// PublicURL is the server's address as people open it, without a
	// trailing slash: links point there, and its host names the bookings'
	// calendar events (booking-<id>@<host>).
	PublicURL string
	// From is the sender's address, the organizer of the calendar events.
	From string
	Now  fablab.Clock
	Log  *slog.Logger
	// ReminderLead is how long before its start a booking is reminded
	// (default DefaultReminderLead).
	ReminderLead time.Duration
}

// Notifier writes the lab's messages to members and queues them. Its
// methods return at once: a failure is logged, never returned to the
// request that caused the message.
type Notifier struct {
	cfg  NotifierConfig
	host string
}

// NewNotifier returns a Notifier.
func NewNotifier(cfg NotifierConfig) *Notifier {
	if cfg.Now == nil {
		cfg.Now = fablab.SystemClock
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ReminderLead <= 0 {
		cfg.ReminderLead = DefaultReminderLead
	}
	host := "fabgate"
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	return &Notifier{cfg: cfg, host: host}
}

// Outbox returns the messages kept in the server, newest first; ok is false
// when mail goes out by SMTP instead.
func (n *Notifier) Outbox() (msgs []Message, ok bool) {
	if n.cfg.Outbox == nil {
		return nil, false
	}
	return n.cfg.Outbox.Messages(), true
}

// Invitation mails a new member the link to choose a password.
func (n *Notifier) Invitation(ctx context.Context, m fablab.Member, link string, expires time.Time) {
	n.link(ctx, KindInvitation, m, link, expires)
}

// PasswordReset mails a member the link to choose a new password.
func (n *Notifier) PasswordReset(ctx context.Context, m fablab.Member, link string, expires time.Time) {
	n.link(ctx, KindReset, m, link, expires)
}

func (n *Notifier) link(ctx context.Context, kind string, m fablab.Member, link string, expires time.Time) {
	st, err := n.cfg.Store.Settings(ctx)
	if err != nil {
		n.cfg.Log.Error("mail not written: settings unreadable", "kind", kind, "member", m.ID, "err", err)
		return
	}
	lang := language(m, st)
	v := n.view(st, m, lang)
	v.Link = link
	v.Expires = i18n.FormatDateTime(lang, expires, st.Location())
	n.send(kind, m, st, v, nil)
}

// BookingConfirmed mails the booked member a confirmation with the booking
// as a calendar invitation (.ics, METHOD:REQUEST).
func (n *Notifier) BookingConfirmed(ctx context.Context, b fablab.Booking) {
	n.booking(ctx, KindConfirmed, b)
}

// BookingCancelled mails the booked member a cancellation notice whose
// .ics (METHOD:CANCEL, the same UID, a higher SEQUENCE) removes the event
// from their calendar.
func (n *Notifier) BookingCancelled(ctx context.Context, b fablab.Booking) {
	n.booking(ctx, KindCancelled, b)
}

// NotifyNoShow mails the member of a booking marked no_show that the slot
// was released.
func (n *Notifier) NotifyNoShow(ctx context.Context, b fablab.Booking) {
	n.booking(ctx, KindNoShow, b)
}

// booking writes and queues a message about b; false when it could not.
func (n *Notifier) booking(ctx context.Context, kind string, b fablab.Booking) bool {
	st, err := n.cfg.Store.Settings(ctx)
	var (
		m   fablab.Member
		mac fablab.Machine
	)
	if err == nil {
		m, err = n.cfg.Store.Member(ctx, b.MemberID)
	}
	if err == nil {
		mac, err = n.cfg.Store.Machine(ctx, b.MachineID)
	}
	if err != nil {
		n.cfg.Log.Error("mail not written", "kind", kind, "booking", b.ID, "err", err)
		return false
	}
	lang := language(m, st)
	loc := st.Location()
	v := n.view(st, m, lang)
	v.Machine = mac.Name
	v.Start = i18n.FormatDateTime(lang, b.Start, loc)
	v.StartTime = i18n.FormatTime(lang, b.Start, loc)
	v.End = i18n.FormatDateTime(lang, b.End, loc)
	if i18n.FormatDate(lang, b.Start, loc) == i18n.FormatDate(lang, b.End, loc) {
		v.End = i18n.FormatTime(lang, b.End, loc)
	}
	v.Release = mac.Rules.NoShowReleaseMinutes
	var att []Attachment
	switch kind {
	case KindConfirmed:
		att = []Attachment{n.ics(st, mac, b, lang, ical.Request, ical.Confirmed, 0)}
	case KindCancelled:
		att = []Attachment{n.ics(st, mac, b, lang, ical.Cancel, ical.Cancelled, 1)}
	}
	return n.send(kind, m, st, v, att)
}

// EventUID is the calendar UID of a booking, the same in its confirmation
// and its cancellation so that calendar apps match them.
func (n *Notifier) EventUID(id fablab.ID) string {
	return "booking-" + id.String() + "@" + n.host
}

// ics is the booking as a one-event calendar.
func (n *Notifier) ics(st fablab.Settings, mac fablab.Machine, b fablab.Booking, lang string, method ical.Method, status ical.Status, seq int) Attachment {
	name := "booking.ics"
	if lang == "fr" {
		name = "reservation.ics"
	}
	cal := ical.Calendar{TimeZone: st.TimeZone, Method: method, Events: []ical.Event{{
		UID: n.EventUID(b.ID), Sequence: seq, Stamp: n.cfg.Now().UTC(),
		Start: b.Start, End: b.End, Summary: mac.Name + " — " + st.Name, Location: st.Name,
		URL: n.cfg.PublicURL + "/", Status: status, Organizer: n.cfg.From,
	}}}
	return Attachment{Name: name, ContentType: ical.ContentType(method), Data: ical.Encode(cal)}
}

func (n *Notifier) view(st fablab.Settings, m fablab.Member, lang string) View {
	return View{Lang: lang, Lab: st.Name, PublicURL: n.cfg.PublicURL, Name: m.Name}
}

// send renders and queues a message; false when it could not.
func (n *Notifier) send(kind string, m fablab.Member, st fablab.Settings, v View, att []Attachment) bool {
	subject, text, html, err := Render(kind, v)
	if err != nil {
		n.cfg.Log.Error("mail not written", "kind", kind, "member", m.ID, "err", err)
		return false
	}
	return n.cfg.Queue.Enqueue(Message{
		FromName: st.Name, To: m.Email, ToName: m.Name, Subject: subject, Date: n.cfg.Now().UTC(),
		Text: text, HTML: html, Attachments: att, MemberID: m.ID, MemberRole: m.Role,
	})
}

// language is the member's language, or the lab's when the member has none.
func language(m fablab.Member, st fablab.Settings) string {
	if m.Language != "" {
		return m.Language
	}
	return st.Language
}

// RemindDue mails a reminder for each confirmed booking starting within the
// reminder lead from now that has had none, and returns how many it
// queued. Each reminder is recorded in the store before it is queued, so
// that a run after a restart (or a concurrent one) never sends it again; a
// booking made within the lead gets none, its confirmation being fresh.
// Bookings whose start has passed (the server was down) get none either.
func (n *Notifier) RemindDue(ctx context.Context) (int, error) {
	now := n.cfg.Now()
	bs, err := n.cfg.Store.BookingsStarting(ctx, now, now.Add(n.cfg.ReminderLead))
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, b := range bs {
		if b.RemindedAt != nil || !b.CreatedAt.Before(b.Start.Add(-n.cfg.ReminderLead)) {
			continue
		}
		first, err := n.cfg.Store.MarkReminded(ctx, b.ID, now)
		if err != nil {
			return sent, err
		}
		if first && n.booking(ctx, KindReminder, b) {
			sent++
		}
	}
	return sent, nil
}

// noShowHorizon bounds how far back ReleaseNoShows looks: a booking the
// server was down through for longer stays confirmed (its member is not
// blamed for the server's outage).
const noShowHorizon = 24 * time.Hour

// ReleaseNoShows marks as no_show the confirmed bookings nobody claimed
// within their machine's no_show_release_minutes (no session started by
// the member on the machine from the check-in window to then), which frees
// their slots for others, mails each member the notice, and returns how
// many it marked. (The no-show fee is charged elsewhere.)
func (n *Notifier) ReleaseNoShows(ctx context.Context) (int, error) {
	marked, err := n.cfg.Store.MarkNoShows(ctx, n.cfg.Now(), noShowHorizon)
	for _, b := range marked {
		n.cfg.Log.Info("booking marked no-show", "booking", b.ID, "machine", b.MachineID, "member", b.MemberID)
		n.NotifyNoShow(ctx, b)
	}
	return len(marked), err
}
