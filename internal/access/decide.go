// Package access turns badge taps into decisions, sessions and relay
// commands (DESIGN §3): it decides, opens sessions durably, publishes
// commands, tracks their acks, and keeps sessions and device state in step.
package access

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// Outcome is what a tap leads to.
type Outcome int

// Outcomes of a tap.
const (
	Deny       Outcome = iota // answer deny with Reason
	Grant                     // open a session until Until, answer unlock
	TapOut                    // close the member's own session, answer lock
	ForceClose                // staff tap on a machine in use: close that session, answer lock
)

// Decision is the verdict on one tap.
type Decision struct {
	Outcome   Outcome
	Reason    string    // for Deny
	Detail    string    // e.g. the missing training's name, the next free time
	Message   string    // for Deny: what the reader shows, in the member's language (set by the engine)
	Until     time.Time // for Grant
	BookingID fablab.ID // for Grant on a booking; 0 for a walk-in
	Override  bool      // staff unlocking a machine in maintenance (logged)
}

// Decide applies the rules of DESIGN §3, in their order, to the facts of a
// tap at now. It reads nothing and writes nothing.
func Decide(f *fablab.AccessFacts, now time.Time) Decision {
	m, rules := &f.Machine, f.Machine.Rules
	// 1. unknown badge
	if f.Member == nil {
		return Decision{Outcome: Deny, Reason: wire.ReasonUnknownBadge}
	}
	who := f.Member
	// 2. the member's own session: tap-out, whatever changed since.
	if f.Open != nil && f.Open.MemberID == who.ID {
		return Decision{Outcome: TapOut}
	}
	// 3. suspended or expired; 4. machine state (staff may still unlock a
	// machine in maintenance); 5. qualifications: the one rule of who may
	// use a machine, checked in that order.
	el := fablab.Eligible(who, m, f.Quals, now)
	switch el.Reason {
	case fablab.IneligibleInactive:
		return Decision{Outcome: Deny, Reason: wire.ReasonMemberInactive}
	case fablab.IneligibleUnavailable:
		return Decision{Outcome: Deny, Reason: wire.ReasonMachineUnavailable}
	case fablab.IneligibleTraining:
		return Decision{Outcome: Deny, Reason: wire.ReasonTrainingRequired, Detail: trainingName(f, el.Missing)}
	}
	staff, override := el.Staff, el.Override
	// 6. someone else's session
	if f.Open != nil {
		if staff {
			return Decision{Outcome: ForceClose}
		}
		return Decision{Outcome: Deny, Reason: wire.ReasonInUse}
	}
	// 7. the member's booking covering now, or starting within the check-in
	// window while nobody else holds the machine now.
	var current *fablab.Booking
	for i := range f.Bookings {
		b := &f.Bookings[i]
		if b.Start.After(now) || !b.End.After(now) {
			continue
		}
		current = b
	}
	if current != nil && current.MemberID == who.ID {
		return Decision{Outcome: Grant, Until: current.End, BookingID: current.ID, Override: override}
	}
	if current == nil {
		checkIn := now.Add(time.Duration(rules.CheckInMinutes) * time.Minute)
		for i := range f.Bookings {
			b := &f.Bookings[i]
			if b.MemberID == who.ID && b.Start.After(now) && !b.Start.After(checkIn) {
				return Decision{Outcome: Grant, Until: b.End, BookingID: b.ID, Override: override}
			}
		}
	}
	// 8. a walk-in on a free machine, until the next booking.
	if current == nil && (rules.WalkIn || staff) {
		until := now.Add(time.Duration(rules.MaxWalkInMinutes) * time.Minute)
		if rules.MaxWalkInMinutes == 0 || staff && !rules.WalkIn {
			until = now.Add(time.Duration(rules.MaxMinutes) * time.Minute)
		}
		if f.NextStart != nil && f.NextStart.Before(until) {
			until = *f.NextStart
		}
		if until.Sub(now) < time.Duration(rules.MinMinutes)*time.Minute {
			d := Decision{Outcome: Deny, Reason: wire.ReasonBookedSoon}
			if f.NextStart != nil {
				d.Detail = f.NextStart.In(f.Settings.Location()).Format("15:04")
			}
			return d
		}
		return Decision{Outcome: Grant, Until: until, Override: override}
	}
	// 9. booked by someone else (or walk-ins not allowed)
	d := Decision{Outcome: Deny, Reason: wire.ReasonBookedByOther}
	if current != nil {
		d.Detail = nextFree(f.Bookings, who.ID, current.End).In(f.Settings.Location()).Format("15:04")
	}
	return d
}

// nextFree returns the first instant from t not covered by other members'
// bookings (which do not overlap): the end of the run of back-to-back
// bookings from t; the member's own booking counts as free for them.
func nextFree(bookings []fablab.Booking, member fablab.ID, t time.Time) time.Time {
	for moved := true; moved; {
		moved = false
		for i := range bookings {
			if bookings[i].MemberID != member && !bookings[i].Start.After(t) && bookings[i].End.After(t) {
				t, moved = bookings[i].End, true
			}
		}
	}
	return t
}

func trainingName(f *fablab.AccessFacts, id fablab.ID) string {
	if n, ok := f.Trainings[id]; ok {
		return n
	}
	return fmt.Sprintf("training %s", id)
}

// Message returns the short text a reader shows for a reason, in the
// member's language (fr by default), at most wire.MaxMessageLen bytes.
func Message(lang, reason, detail string) string {
	m := message(lang, reason, detail)
	for len(m) > wire.MaxMessageLen {
		_, size := utf8.DecodeLastRuneInString(m)
		m = m[:len(m)-size]
	}
	return m
}

func message(lang, reason, detail string) string {
	fr := lang != "en"
	switch reason {
	case wire.ReasonUnknownBadge:
		return pick(fr, "Badge inconnu : voyez l'équipe", "Unknown badge: see the staff")
	case wire.ReasonMemberInactive:
		return pick(fr, "Adhésion inactive", "Membership inactive")
	case wire.ReasonMachineUnavailable:
		return pick(fr, "Machine indisponible", "Machine unavailable")
	case wire.ReasonTrainingRequired:
		return pick(fr, "Formation requise : ", "Training required: ") + detail
	case wire.ReasonInUse:
		return pick(fr, "Machine occupée", "Machine in use")
	case wire.ReasonBookedSoon:
		return pick(fr, "Réservée à ", "Booked at ") + detail
	case wire.ReasonBookedByOther:
		if detail != "" {
			return pick(fr, "Réservée jusqu'à ", "Booked until ") + detail
		}
		return pick(fr, "Réservée", "Booked")
	case wire.ReasonSessionEnding:
		return pick(fr, "Fin dans ", "Ends in ") + detail
	case wire.ReasonNoMachine:
		return pick(fr, "Lecteur non relié à une machine", "Reader not bound to a machine")
	case wire.ReasonServerError:
		return pick(fr, "Erreur du serveur : réessayez", "Server error: try again")
	}
	return reason
}

func pick(fr bool, a, b string) string {
	if fr {
		return a
	}
	return b
}
