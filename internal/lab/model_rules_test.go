package lab_test

import (
	"fmt"
	"slices"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// The model's own statement of the rules TestLabModel checks the lab
// against: DESIGN §3's access decision, the booking rules, the billing
// rule and the invoice runs, written from the documents (DESIGN,
// docs/billing.md, the booking rules' documentation), never by calling
// FabGate's own functions.

// occupying returns the machine's confirmed bookings overlapping [from, to),
// by start.
func (m *modelLab) occupying(mach *mMachine, from, to time.Time) []*mBooking {
	var out []*mBooking
	for _, b := range m.bookings {
		if b.mach == mach && b.occupies() && b.start.Before(to) && b.end.After(from) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b *mBooking) int { return a.start.Compare(b.start) })
	return out
}

func (m *modelLab) openOn(mach *mMachine) *mSession {
	for _, s := range m.sessions {
		if s.mach == mach && s.open() {
			return s
		}
	}
	return nil
}

// verdict is what a tap should lead to.
type verdict struct {
	op      string // wire.OpUnlock, wire.OpDeny, or wire.OpLock (a tap-out, or staff taking over)
	reason  string // the deny's reason, or the lock's (tap_out, staff)
	detail  string // what the reader's message must name
	until   time.Time
	booking *mBooking
	ends    *mSession // the session a lock ends
}

// decide is DESIGN §3, in its order, for a tap of who on mach at now.
func (m *modelLab) decide(mach *mMachine, who *mMember, now time.Time) verdict {
	if who.id == 0 {
		return verdict{op: wire.OpDeny, reason: wire.ReasonUnknownBadge}
	}
	open := m.openOn(mach)
	if open != nil && open.who == who {
		return verdict{op: wire.OpLock, reason: fablab.EndTapOut, ends: open}
	}
	if who.suspended {
		return verdict{op: wire.OpDeny, reason: wire.ReasonMemberInactive}
	}
	if mach.maintenance && !who.staff {
		return verdict{op: wire.OpDeny, reason: wire.ReasonMachineUnavailable}
	}
	if mach.training && !who.qualified(now) {
		return verdict{op: wire.OpDeny, reason: wire.ReasonTrainingRequired, detail: laserTraining}
	}
	if open != nil {
		if who.staff {
			return verdict{op: wire.OpLock, reason: fablab.EndStaff, ends: open}
		}
		return verdict{op: wire.OpDeny, reason: wire.ReasonInUse}
	}
	// The server reads the next 24 hours of bookings.
	ahead := m.occupying(mach, now, now.Add(24*time.Hour))
	var current *mBooking
	for _, b := range ahead {
		if !b.start.After(now) && b.end.After(now) {
			current = b
		}
	}
	if current != nil {
		if current.who == who {
			return verdict{op: wire.OpUnlock, until: current.end, booking: current}
		}
		// Booked by someone else: no walk-in, staff or not.
		return verdict{op: wire.OpDeny, reason: wire.ReasonBookedByOther}
	}
	checkIn := now.Add(time.Duration(mach.checkIn) * time.Minute)
	for _, b := range ahead {
		if b.who == who && b.start.After(now) && !b.start.After(checkIn) {
			return verdict{op: wire.OpUnlock, until: b.end, booking: b}
		}
	}
	// A walk-in (every machine of the lab allows them), until the next
	// booking, at most the machine's cap.
	until := now.Add(time.Duration(mach.maxWalkIn) * time.Minute)
	for _, b := range ahead {
		if b.start.After(now) {
			if b.start.Before(until) {
				until = b.start
			}
			break
		}
	}
	if until.Sub(now) < time.Duration(mach.minLen)*time.Minute {
		return verdict{op: wire.OpDeny, reason: wire.ReasonBookedSoon, detail: local(until).Format("15:04")}
	}
	return verdict{op: wire.OpUnlock, until: until}
}

// bookingRefusal is the code a booking request of who on mach for
// [start, end) at now is refused with ("" when it is accepted).
func (m *modelLab) bookingRefusal(who *mMember, mach *mMachine, start, end, now time.Time) string {
	switch {
	case who.suspended:
		return fablab.EUNAUTHORIZED // a suspended account cannot use the API
	case mach.maintenance:
		return fablab.CodeMachineUnavailable
	case start.Before(now.Truncate(time.Minute)):
		return fablab.CodeInThePast
	}
	ls, dur := local(start), end.Sub(start)
	slot := time.Duration(mach.slot) * time.Minute
	switch {
	case ls.Second() != 0 || (ls.Hour()*60+ls.Minute())%mach.slot != 0 || dur%slot != 0:
		return fablab.CodeSlotGranularity
	case dur < time.Duration(mach.minLen)*time.Minute:
		return fablab.CodeTooShort
	case dur > time.Duration(mach.maxLen)*time.Minute:
		return fablab.CodeTooLong
	case !who.staff && start.After(local(now).AddDate(0, 0, mach.maxAhead)):
		// Staff may book further ahead.
		return fablab.CodeTooFarAhead
	case !openDuring(start, end):
		return fablab.CodeOutsideOpeningHours
	case mach.training && !who.qualified(end):
		// The training must hold until the booking's end.
		return fablab.CodeTrainingRequired
	case len(m.occupying(mach, start, end)) > 0:
		return fablab.CodeBookingConflict
	}
	return ""
}

// openDuring reports whether [start, end) lies within one day's opening
// hours of a new lab: Monday to Friday 09:00–21:00, Saturday 10:00–18:00.
func openDuring(start, end time.Time) bool {
	ls := local(start)
	var open, closing int
	switch ls.Weekday() {
	case time.Sunday:
		return false
	case time.Saturday:
		open, closing = 10, 18
	default:
		open, closing = 9, 21
	}
	from := time.Date(ls.Year(), ls.Month(), ls.Day(), open, 0, 0, 0, paris)
	to := time.Date(ls.Year(), ls.Month(), ls.Day(), closing, 0, 0, 0, paris)
	return !start.Before(from) && !end.After(to)
}

// cancelRefusal is the code a cancellation of b by who at now is refused
// with ("" when it is accepted).
func (m *modelLab) cancelRefusal(b *mBooking, who *mMember, now time.Time) string {
	switch {
	case who.suspended:
		return fablab.EUNAUTHORIZED
	case who != b.who && !who.staff:
		return fablab.ENOTFOUND // makers do not see others' bookings
	case b.state != fablab.BookingConfirmed:
		return fablab.CodeNotCancellable
	case !who.staff && now.After(b.start.Add(-time.Duration(b.mach.cutoff)*time.Minute)):
		return fablab.CodeCancellationCutoff
	}
	return ""
}

// sweep is the 15-second sweep at now: the sessions of a device silent
// for more than 90 s are closed at its last sign of life (no lock: it
// cannot hear it), sessions past their end are closed at it with a lock,
// those ending within 5 minutes warned once. It returns the commands the
// devices should receive.
func (m *modelLab) sweep(now time.Time) map[*mMachine][]wire.Command {
	want := map[*mMachine][]wire.Command{}
	if m.lastSweep.IsZero() || now.Sub(m.lastSweep) > modelOffline || now.Before(m.lastSweep) {
		m.watchingSince = now
	}
	m.lastSweep = now
	for _, s := range m.sessions {
		if !s.open() {
			continue
		}
		switch seen := m.lastSeen[s.mach]; {
		case now.Sub(seen) > modelOffline && now.Sub(m.watchingSince) > modelOffline:
			s.ended, s.reason = seen, fablab.EndDeviceOffline
		case !now.Before(s.until):
			s.ended, s.reason = s.until, fablab.EndBookingEnd
			want[s.mach] = append(want[s.mach], wire.Command{Op: wire.OpLock, SessionID: s.id.String(), Reason: fablab.EndBookingEnd})
		case s.until.Sub(now) <= modelWarn && !s.warned:
			s.warned = true
			want[s.mach] = append(want[s.mach], wire.Command{Op: wire.OpWarn, SessionID: s.id.String(), Until: s.until.Unix(), Reason: wire.ReasonSessionEnding})
		}
	}
	return want
}

// noShows marks the bookings the no-show job releases at now: confirmed,
// started within the last 24 hours, their release delay passed, and no
// session of their member on their machine started from the check-in
// window to the release. Each pays the machine's fee, unless staff.
func (m *modelLab) noShows(now time.Time) []*mBooking {
	var out []*mBooking
	for _, b := range m.bookings {
		release := b.start.Add(time.Duration(b.mach.release) * time.Minute)
		if !b.occupies() || now.Before(release) || b.start.Before(now.Add(-modelHorizon)) || !b.start.Before(now) {
			continue
		}
		from := b.start.Add(-time.Duration(b.mach.checkIn) * time.Minute)
		claimed := false
		for _, s := range m.sessions {
			claimed = claimed || s.mach == b.mach && s.who == b.who && !s.started.Before(from) && !s.started.After(release)
		}
		if claimed {
			continue
		}
		b.state = fablab.BookingNoShow
		out = append(out, b)
		if b.mach.noShowFee > 0 && !b.who.staff {
			m.charges = append(m.charges, &mCharge{kind: fablab.ChargeNoShow, booking: b, who: b.who, mach: b.mach, at: b.start, amount: b.mach.noShowFee})
		}
	}
	return out
}

// bill charges every closed session not charged yet (docs/billing.md):
// staff free; under 2 minutes free; the use rounded up to 5 minutes; the
// group's hourly rate, rounded half up to the cent, at least the
// machine's minimum charge; no rate for the group: free.
func (m *modelLab) bill() {
	for _, s := range m.sessions {
		if s.open() || s.charge != nil {
			continue
		}
		used := s.ended.Sub(s.started)
		inc := time.Duration(modelIncrement) * time.Minute
		c := &mCharge{kind: fablab.ChargeSession, session: s, who: s.who, mach: s.mach, at: s.ended,
			minutes: int64((used+inc-1)/inc) * modelIncrement}
		rate, priced := s.mach.prices[s.who.group]
		switch {
		case !s.confirmed:
			c.free = fablab.FreeNotBillable
		case s.who.staff || s.who.group == "staff":
			c.free = fablab.FreeStaff
		case used < modelFreeUnder*time.Minute:
			c.free = fablab.FreeShort
		case !priced:
			c.free = fablab.FreeNoPrice
		default:
			c.unit = rate
			c.amount = max((c.minutes*rate+30)/60, s.mach.minCharge)
		}
		s.charge = c
		m.charges = append(m.charges, c)
	}
}

// runInvoices is a period's run at now: for each payer, one invoice of
// their charges not invoiced yet whose use falls before the period's end,
// if they total more than zero (a zero total settles them). A period runs
// once. Numbers follow each other within the year of issue.
func (m *modelLab) runInvoices(year int, month time.Month, now time.Time) {
	name := periodName(year, month)
	if _, done := m.runs[name]; done {
		return
	}
	end := periodEnd(year, month)
	var issued []*mInvoice
	byPayer := map[fablab.Payer]*mInvoice{}
	for _, c := range m.charges {
		if c.invoice != nil || !c.at.Before(end) {
			continue
		}
		inv := byPayer[c.who.payer]
		if inv == nil {
			inv = &mInvoice{period: name, payer: c.who.payer, issued: now}
			byPayer[c.who.payer] = inv
			issued = append(issued, inv)
		}
		c.invoice = inv
		inv.total += c.amount
		if c.amount != 0 {
			inv.charges = append(inv.charges, c)
		}
	}
	kept := issued[:0]
	for _, inv := range issued {
		if inv.total > 0 {
			kept = append(kept, inv)
		}
	}
	y := local(now).Year()
	for range kept {
		m.lastNum[y]++
		m.numbers[name] = append(m.numbers[name], fmt.Sprintf("%s-%04d-%06d", modelPrefix, y, m.lastNum[y]))
	}
	m.runs[name] = kept
	m.invoices = append(m.invoices, kept...)
}

// modelRunDue is the invoices job at now: it bills, then runs every month
// whose invoice time (the 1st at 02:00) passed since invoicing started and
// that was not run.
func (m *modelLab) modelRunDue() {
	now := m.clock.Now()
	m.bill()
	s := local(m.started)
	for y, mo := s.Year(), s.Month()-1; ; mo++ {
		if mo == 0 {
			y, mo = y-1, 12
		}
		if mo == 13 {
			y, mo = y+1, 1
		}
		at := periodEnd(y, mo).Add(2 * time.Hour)
		if at.After(now) {
			return
		}
		if at.After(m.started) {
			m.runInvoices(y, mo, now)
		}
	}
}

// vat is the VAT on a total excluding it, rounded half up.
func vat(total int64) int64 { return (total*modelVAT + 5000) / 10000 }
