// Package mail sends FabGate's mail to members: invitations, password reset
// links, booking confirmations and cancellations (with an .ics), reminders
// and no-show notices, in the member's language.
//
// A Sender delivers one Message: SMTP (NewSMTP, configured from the
// smtp_url setting) or the Outbox, which keeps the last messages in memory
// for staff to read (the default, and the demo lab's). A Queue sends in the
// background with retries, so that no request waits on a mail server. A
// Notifier renders the messages from the lab's data and queues them.
package mail

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Message is one mail to one person: a plain text body with an HTML
// alternative, and attachments.
type Message struct {
	FromName    string       `json:"-"`       // the sender's display name (the lab's); the address is the Sender's
	To          string       `json:"to"`      // address
	ToName      string       `json:"to_name"` // display name, may be empty
	Subject     string       `json:"subject"`
	Date        time.Time    `json:"date"`
	Text        string       `json:"text"`
	HTML        string       `json:"-"`
	Attachments []Attachment `json:"attachments"`
	// MemberID and MemberRole are the recipient's account and its role when
	// the message was written: the outbox shows staff only the mail of
	// the accounts they manage, since it holds reset links.
	MemberID   fablab.ID   `json:"-"`
	MemberRole fablab.Role `json:"-"`
}

// Attachment is a file attached to a message.
type Attachment struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Data        []byte `json:"-"`
}

// Sender delivers messages.
type Sender interface {
	// Send delivers m, or returns why it could not (the Queue retries).
	Send(ctx context.Context, m Message) error
}

// DefaultOutboxSize is how many messages an Outbox keeps by default.
const DefaultOutboxSize = 200

// Outbox is a Sender that keeps the last messages in memory instead of
// sending them: the demo lab's mail, which staff read through the API. It
// is bounded: past its size, the oldest message is dropped.
type Outbox struct {
	mu   sync.Mutex
	size int
	msgs []Message // oldest first
}

// NewOutbox returns an Outbox keeping the last size messages
// (DefaultOutboxSize when size <= 0).
func NewOutbox(size int) *Outbox {
	if size <= 0 {
		size = DefaultOutboxSize
	}
	return &Outbox{size: size}
}

// Send keeps m, dropping the oldest message when the outbox is full.
func (o *Outbox) Send(_ context.Context, m Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.msgs) == o.size {
		o.msgs = slices.Delete(o.msgs, 0, 1)
	}
	o.msgs = append(o.msgs, m)
	return nil
}

// Messages returns the kept messages, newest first.
func (o *Outbox) Messages() []Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := slices.Clone(o.msgs)
	slices.Reverse(out)
	return out
}
