package lab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"pgregory.net/rapid"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// The steps of TestLabModel: each draws what happens, makes it happen in
// the real lab, applies it to the model, and checks what can be seen at
// once (a tap's answer, a request's status); check then compares the
// whole state.

// Booking requests.

var bookMinutes = []int{30, 30, 60, 60, 90, 120, 150, 240, 270, 45}

// nextSlot is the first half-hour boundary (lab time) at or after t.
func nextSlot(t time.Time) time.Time {
	l := local(t)
	min := l.Hour()*60 + l.Minute()
	if l.Second() != 0 || l.Nanosecond() != 0 {
		min++
	}
	min = (min + 29) / 30 * 30
	return time.Date(l.Year(), l.Month(), l.Day(), 0, min, 0, 0, paris)
}

// actBook books a slot drawn around now: soon (sometimes just past),
// misaligned, against an existing booking (the same start, overlapping
// it, just after it), on the next days at hours in and out of the opening
// hours, or near the end of how far ahead one may book.
func (m *modelLab) actBook(rt *rapid.T) {
	now := m.clock.Now()
	base := nextSlot(now)
	l := local(now)
	var start time.Time
	switch when := rapid.IntRange(0, 9).Draw(rt, "when"); {
	case when == 6 && len(m.bookings) > 0:
		b := rapid.SampledFrom(m.bookings).Draw(rt, "near")
		offset := []int{0, 1, 2, 3, -1, -2}[rapid.IntRange(0, 5).Draw(rt, "offset_slots")]
		start = b.start.Add(time.Duration(offset) * 30 * time.Minute)
	case when == 7:
		start = base.Add(time.Duration(rapid.IntRange(0, 6).Draw(rt, "slots_ahead"))*30*time.Minute + 10*time.Minute)
	case when == 8:
		h := rapid.SampledFrom([]int{7, 8, 9, 10, 13, 17, 18, 20, 21, 22}).Draw(rt, "hour")
		start = time.Date(l.Year(), l.Month(), l.Day()+rapid.IntRange(1, 2).Draw(rt, "days_ahead"), h, 0, 0, 0, paris)
	case when == 9:
		start = time.Date(l.Year(), l.Month(), l.Day()+rapid.IntRange(27, 29).Draw(rt, "days_ahead"), 14, 0, 0, 0, paris)
	default:
		k := rapid.IntRange(0, 9).Draw(rt, "slots_ahead")
		if k == 9 {
			k = -1 // just started: in the past, or not yet if within its first minute
		}
		start = base.Add(time.Duration(k) * 30 * time.Minute)
	}
	m.book(rt, start)
}

// Who does what, drawn with these weights: the suspended member and the
// resin printer in maintenance have little to do.
var (
	bookers = func(m *modelLab) []*mMember {
		return []*mMember{m.sam, m.ada, m.ada, m.ada, m.bob, m.bob, m.bob, m.ugo, m.ugo, m.sue}
	}
	tappers = func(m *modelLab) []*mMember {
		return []*mMember{m.sam, m.sam, m.ada, m.ada, m.ada, m.bob, m.bob, m.bob, m.ugo, m.ugo, m.sue, m.nemo}
	}
	machinesDrawn = func(m *modelLab) []*mMachine {
		return []*mMachine{m.machines[0], m.machines[0], m.machines[0], m.machines[1], m.machines[1], m.machines[1], m.machines[2]}
	}
)

func (m *modelLab) book(rt *rapid.T, start time.Time) {
	who := rapid.SampledFrom(bookers(m)).Draw(rt, "who")
	mach := rapid.SampledFrom(machinesDrawn(m)).Draw(rt, "machine")
	end := start.Add(time.Duration(rapid.SampledFrom(bookMinutes).Draw(rt, "minutes")) * time.Minute)
	m.tick(rt)
	now := m.clock.Now()
	want := m.bookingRefusal(who, mach, start, end, now)
	m.stats.add("book: %s", orOK(want))
	status, body := m.do(http.MethodPost, "/api/v1/bookings", who, map[string]any{"machine_id": mach.id, "start": start, "end": end})
	rt.Logf("%s books %s from %s to %s at %s: %d (want %q)", who.name, mach.name, local(start).Format(time.DateTime), local(end).Format(time.TimeOnly), local(now).Format(time.DateTime), status, want)
	if status != http.StatusCreated {
		if got := m.problemCode(status, body); got != want {
			rt.Fatalf("booking refused with %q (%d), the model says %q: %s", got, status, orOK(want), body)
		}
		return
	}
	if want != "" {
		rt.Fatalf("booking accepted, the model refuses it with %q: %s", want, body)
	}
	var b fablab.Booking
	if err := json.Unmarshal(body, &b); err != nil {
		rt.Fatalf("booking response: %v: %s", err, body)
	}
	m.bookings = append(m.bookings, &mBooking{id: b.ID, mach: mach, who: who, start: start, end: end, state: fablab.BookingConfirmed})
}

func orOK(code string) string {
	if code == "" {
		return "accepted"
	}
	return code
}

// actCancel cancels a booking: by its member, by staff, or by another
// member who may not see it.
func (m *modelLab) actCancel(rt *rapid.T) {
	if len(m.bookings) == 0 {
		rt.Skip("no bookings yet")
	}
	var confirmed []*mBooking
	for _, b := range m.bookings {
		if b.occupies() {
			confirmed = append(confirmed, b)
		}
	}
	pool := m.bookings
	if len(confirmed) > 0 && rapid.IntRange(0, 4).Draw(rt, "any_state") != 4 {
		pool = confirmed
	}
	b := rapid.SampledFrom(pool).Draw(rt, "booking")
	who := b.who
	switch rapid.IntRange(0, 9).Draw(rt, "by") {
	case 7, 8:
		who = m.sam
	case 9:
		who = rapid.SampledFrom(m.members).Draw(rt, "someone")
	}
	m.tick(rt)
	now := m.clock.Now()
	want := m.cancelRefusal(b, who, now)
	m.stats.add("cancel: %s", orOK(want))
	status, body := m.do(http.MethodDelete, "/api/v1/bookings/"+b.id.String(), who, nil)
	rt.Logf("%s cancels booking %s (%s's, %s, %s) at %s: %d (want %q)", who.name, b.id, b.who.name, b.state, local(b.start).Format(time.DateTime), local(now).Format(time.DateTime), status, want)
	if status != http.StatusOK {
		if got := m.problemCode(status, body); got != want {
			rt.Fatalf("cancellation refused with %q (%d), the model says %q: %s", got, status, orOK(want), body)
		}
		return
	}
	if want != "" {
		rt.Fatalf("cancellation accepted, the model refuses it with %q: %s", want, body)
	}
	b.state = fablab.BookingCancelled
}

// tick lets a few seconds pass, as between two things people do, without
// reaching an open session's end (the sweep would come first).
func (m *modelLab) tick(rt *rapid.T) {
	m.pass(time.Duration(rapid.IntRange(0, 40).Draw(rt, "seconds")) * time.Second)
}

// pass moves the clock by d, at most to a second before the first open
// session's end.
func (m *modelLab) pass(d time.Duration) {
	now := m.clock.Now()
	to := now.Add(d)
	for _, s := range m.sessions {
		if s.open() && !to.Before(s.until) {
			to = s.until.Add(-time.Second)
		}
	}
	if to.After(now) {
		m.clock.Set(to)
	}
}

// Taps.

// actTap taps anyone's badge (or a badge nobody holds) on any device.
func (m *modelLab) actTap(rt *rapid.T) {
	who := rapid.SampledFrom(tappers(m)).Draw(rt, "who")
	mach := rapid.SampledFrom(machinesDrawn(m)).Draw(rt, "machine")
	m.tick(rt)
	m.tap(rt, mach, who)
}

// actTapBooked goes to a booking that has not ended — in its check-in
// window, at its start, within its release delay, or later — and taps the
// badge of its member (sometimes of someone else) on its machine.
func (m *modelLab) actTapBooked(rt *rapid.T) {
	now := m.clock.Now()
	var ahead []*mBooking
	for _, b := range m.bookings {
		if b.occupies() && b.end.After(now) {
			ahead = append(ahead, b)
		}
	}
	if len(ahead) == 0 {
		rt.Skip("no booking ahead")
	}
	b := rapid.SampledFrom(ahead).Draw(rt, "booking")
	offset := []int{0, -5, 1, 10, -15, -16, 14, 16, 25, -1}[rapid.IntRange(0, 9).Draw(rt, "minutes_from_start")]
	if to := b.start.Add(time.Duration(offset) * time.Minute); to.After(now) {
		m.moveTo(rt, to)
	}
	who := b.who
	if rapid.IntRange(0, 3).Draw(rt, "someone_else") == 3 {
		who = rapid.SampledFrom(tappers(m)).Draw(rt, "who")
	}
	m.tick(rt)
	m.tap(rt, b.mach, who)
}

// actTapOut taps the member of an open session out, some minutes later.
func (m *modelLab) actTapOut(rt *rapid.T) {
	var open []*mSession
	for _, s := range m.sessions {
		if s.open() {
			open = append(open, s)
		}
	}
	if len(open) == 0 {
		rt.Skip("no open session")
	}
	s := rapid.SampledFrom(open).Draw(rt, "session")
	m.pass(time.Duration(rapid.IntRange(0, 50*60).Draw(rt, "seconds")) * time.Second)
	m.tap(rt, s.mach, s.who)
}

// tap taps who's badge on mach's device now and checks the answer against
// the model's decision.
func (m *modelLab) tap(rt *rapid.T, mach *mMachine, who *mMember) {
	now := m.clock.Now()
	want := m.decide(mach, who, now)
	m.lastSeen[mach] = now
	kind := ""
	switch {
	case want.op == wire.OpUnlock && want.booking != nil && want.booking.start.After(now):
		kind = " (check-in)"
	case want.op == wire.OpUnlock && want.booking != nil:
		kind = " (booking)"
	case want.op == wire.OpUnlock:
		kind = " (walk-in)"
	}
	m.stats.add("tap: %s %s%s", want.op, want.reason, kind)
	ctx, cancel := context.WithTimeout(m.ctx, waitLong)
	msgID, err := mach.device.Tap(ctx, who.uid)
	cancel()
	if err != nil {
		rt.Fatalf("%s: tap: %v", mach.dev, err)
	}
	got := m.next(mach, "the answer to "+who.name+"'s tap")
	if got.TapID != msgID {
		rt.Fatalf("%s: %+v received while waiting for the answer to %s's tap", mach.dev, got, who.name)
	}
	rt.Logf("%s taps on %s at %s: %s %s until %s (want %s %s until %s)", who.name, mach.name, local(now).Format(time.DateTime),
		got.Op, got.Reason, unixLocal(got.Until), want.op, want.reason, clock(want.until))
	if got.Op != want.op || got.Reason != want.reason {
		rt.Fatalf("%s's tap on %s at %s answered %+v, the model says %s %s", who.name, mach.name, local(now), got, want.op, want.reason)
	}
	switch want.op {
	case wire.OpDeny:
		if got.Message == "" || !strings.Contains(got.Message, want.detail) {
			rt.Fatalf("deny %s with message %q, want it to name %q", got.Reason, got.Message, want.detail)
		}
		if mach != m.unacked {
			m.ackHandled(mach, got.CmdID)
		}
	case wire.OpUnlock:
		if got.Until != want.until.Unix() {
			rt.Fatalf("unlock until %s, the model says until %s", unixLocal(got.Until), local(want.until))
		}
		id, err := fablab.ParseID(got.SessionID)
		if err != nil {
			rt.Fatalf("unlock %+v: session id: %v", got, err)
		}
		s := &mSession{id: id, mach: mach, who: who, started: now, until: want.until, confirmed: true}
		if want.booking != nil {
			s.booking = want.booking.id
		}
		m.sessions = append(m.sessions, s)
		if mach == m.unacked {
			break
		}
		// The session is confirmed by the relay's ack.
		m.eventually("session "+id.String()+" confirmed", func() bool {
			got, err := m.store.Session(m.ctx, id)
			return err == nil && got.Confirmed
		})
	case wire.OpLock:
		if got.SessionID != want.ends.id.String() {
			rt.Fatalf("lock %+v, want session %s", got, want.ends.id)
		}
		// ended_by is whoever tapped: staff taking over, or the member
		// tapping out (the API's documentation).
		want.ends.ended, want.ends.reason, want.ends.endedBy = now, want.reason, who.id
	}
	if want.op != wire.OpDeny {
		m.touched[mach] = true
	}
}

func unixLocal(sec int64) string {
	if sec == 0 {
		return "-"
	}
	return local(time.Unix(sec, 0)).Format(time.DateTime)
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return local(t).Format(time.DateTime)
}

// The clock and the jobs.

// actAdvance moves the clock — a few minutes, hours, to an open session's
// end or its warning, around a booking's start, or to the next day — keeps
// the devices alive (their heartbeats) and runs the sessions sweep.
func (m *modelLab) actAdvance(rt *rapid.T) {
	now := m.clock.Now()
	var open []*mSession
	for _, s := range m.sessions {
		if s.open() {
			open = append(open, s)
		}
	}
	var to time.Time
	switch kind := rapid.IntRange(0, 7).Draw(rt, "advance"); {
	case kind == 2 && len(open) > 0:
		s := rapid.SampledFrom(open).Draw(rt, "session")
		to = s.until.Add(time.Duration(rapid.IntRange(-1, 120).Draw(rt, "seconds_after")) * time.Second)
	case kind == 3 && len(open) > 0:
		s := rapid.SampledFrom(open).Draw(rt, "session")
		to = s.until.Add(-modelWarn + time.Duration(rapid.IntRange(-30, 290).Draw(rt, "seconds_in_warning"))*time.Second)
	case kind == 4 && len(m.bookings) > 0:
		b := rapid.SampledFrom(m.bookings).Draw(rt, "booking")
		to = b.start.Add(time.Duration(rapid.SampledFrom([]int{-20, -16, -15, -10, -1, 0, 1, 14, 15, 16, 19, 20, 21, 30}).Draw(rt, "minutes_from_start")) * time.Minute)
	case kind == 5 || kind == 7:
		l := local(now)
		to = time.Date(l.Year(), l.Month(), l.Day()+1, 8, rapid.IntRange(0, 12*60).Draw(rt, "minute_of_next_day"), 0, 0, paris)
	case kind == 1:
		to = now.Add(time.Duration(rapid.IntRange(25, 240).Draw(rt, "minutes")) * time.Minute)
	default:
		to = now.Add(time.Duration(rapid.IntRange(1, 20*60).Draw(rt, "seconds")) * time.Second)
	}
	if !to.After(now) {
		to = now.Add(time.Second)
	}
	m.moveTo(rt, to)
}

// moveTo moves the clock to to, and the sweep runs.
func (m *modelLab) moveTo(rt *rapid.T, to time.Time) {
	m.clock.Set(to)
	rt.Logf("the clock moves to %s", local(to).Format(time.DateTime+" Mon"))
	m.sweepNow(rt)
}

// sweepNow keeps every device alive at the clock's time (but those
// silent) and runs the sessions sweep, checking the commands it sends.
func (m *modelLab) sweepNow(rt *rapid.T, silent ...*mMachine) {
	now := m.clock.Now()
	for _, mach := range m.machines {
		if slices.Contains(silent, mach) {
			continue
		}
		m.lastSeen[mach] = now
		ctx, cancel := context.WithTimeout(m.ctx, waitLong)
		err := mach.device.Heartbeat(ctx)
		cancel()
		if err != nil {
			rt.Fatalf("%s: heartbeat: %v", mach.dev, err)
		}
		dev := mach.dev
		m.eventually(dev+" seen at "+now.Format(time.TimeOnly), func() bool {
			st := m.lab.Engine.DeviceStates()[dev]
			return st.LastSeen != nil && st.LastSeen.Equal(now)
		})
	}
	want := m.sweep(now)
	if err := m.lab.Jobs.RunNow(m.ctx, "sessions_sweep"); err != nil {
		rt.Fatalf("sessions sweep: %v", err)
	}
	for mach, cmds := range want {
		for _, w := range cmds {
			got := m.next(mach, "the sweep's "+w.Op)
			rt.Logf("%s: sweep sends %s %s for session %s", mach.dev, got.Op, got.Reason, got.SessionID)
			m.stats.add("sweep: %s", got.Op)
			if got.Op != w.Op || got.SessionID != w.SessionID || got.Reason != w.Reason || w.Op == wire.OpWarn && got.Until != w.Until {
				rt.Fatalf("%s: the sweep at %s sent %+v, the model says %+v", mach.dev, local(now), got, w)
			}
			if got.Op == wire.OpWarn {
				m.ackHandled(mach, got.CmdID)
				m.lastSeen[mach] = now // an ack is a sign of life, a silent device's too
			}
		}
		m.touched[mach] = true
	}
}

// actJob runs one of the jobs (no-shows, billing, invoices), staff run a
// month's invoices, or the server restarts.
func (m *modelLab) actJob(rt *rapid.T) {
	switch rapid.SampledFrom([]string{"no_shows", "no_shows", "no_shows", "billing", "billing", "billing", "invoices", "invoices", "restart", "restart"}).Draw(rt, "job") {
	case "no_shows":
		m.actNoShows(rt)
	case "billing":
		m.actBill(rt)
	case "invoices":
		m.actInvoice(rt)
	case "restart":
		m.actRestart(rt)
	}
}

// actNoShows runs the no-show job.
func (m *modelLab) actNoShows(rt *rapid.T) {
	if err := m.lab.Jobs.RunNow(m.ctx, "no_shows"); err != nil {
		rt.Fatalf("no-show job: %v", err)
	}
	for _, b := range m.noShows(m.clock.Now()) {
		rt.Logf("booking %s of %s on %s at %s released as a no-show", b.id, b.who.name, b.mach.name, local(b.start).Format(time.DateTime))
		m.stats.add("no-show released")
	}
}

// actBill runs the billing job.
func (m *modelLab) actBill(rt *rapid.T) {
	if err := m.lab.Jobs.RunNow(m.ctx, "billing"); err != nil {
		rt.Fatalf("billing job: %v", err)
	}
	n := len(m.charges)
	m.bill()
	m.stats.add("bill: %d charges", min(len(m.charges)-n, 3))
}

// actInvoice runs a month's invoices: staff over HTTP for this month (too
// early), the last or the one before, or the monthly job.
func (m *modelLab) actInvoice(rt *rapid.T) {
	now := m.clock.Now()
	if rapid.Bool().Draw(rt, "job") {
		rt.Logf("the invoices job runs at %s", local(now).Format(time.DateTime))
		if err := m.lab.Jobs.RunNow(m.ctx, "invoices"); err != nil {
			rt.Fatalf("invoices job: %v", err)
		}
		n := len(m.invoices)
		m.modelRunDue()
		m.stats.add("invoices job: %d issued", len(m.invoices)-n)
		return
	}
	l := local(now)
	p := time.Date(l.Year(), l.Month()-time.Month(rapid.IntRange(0, 2).Draw(rt, "months_back")), 1, 0, 0, 0, 0, paris)
	name := periodName(p.Year(), p.Month())
	status, body := m.do(http.MethodPost, "/api/v1/invoices/run?period="+name, m.sam, nil)
	rt.Logf("staff run the invoices of %s at %s: %d", name, l.Format(time.DateTime), status)
	end := periodEnd(p.Year(), p.Month())
	if now.Before(end) {
		if status != http.StatusBadRequest || m.problemCode(status, body) != fablab.EINVALID {
			rt.Fatalf("invoices of %s run before its end: %d %s", name, status, body)
		}
		return
	}
	_, ran := m.runs[name]
	if want := map[bool]int{false: http.StatusCreated, true: http.StatusOK}[ran]; status != want {
		rt.Fatalf("invoices of %s: %d, want %d: %s", name, status, want, body)
	}
	m.runInvoices(p.Year(), p.Month(), now)
	m.stats.add("invoices run by staff: %d issued (created %v)", len(m.runs[name]), !ran)
	var resp struct {
		Created  bool             `json:"created"`
		Invoices []fablab.Invoice `json:"invoices"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		rt.Fatalf("invoices run response: %v: %s", err, body)
	}
	if resp.Created == ran || len(resp.Invoices) != len(m.runs[name]) {
		rt.Fatalf("invoices of %s: created %v with %d invoices, the model has %d (run before: %v)", name, resp.Created, len(resp.Invoices), len(m.runs[name]), ran)
	}
}

// actRestart stops the server and starts it again over the same data file,
// after a downtime; the devices stay connected to the broker. At start the
// server catches up on the invoices and sweeps.
func (m *modelLab) actRestart(rt *rapid.T) {
	m.stopLab()
	m.closeStore()
	down := time.Duration(rapid.SampledFrom([]int{0, 0, 1, 5, 45}).Draw(rt, "minutes_down")) * time.Minute
	m.pass(down)
	rt.Logf("the server restarts at %s", local(m.clock.Now()).Format(time.DateTime))
	m.stats.add("restart")
	m.openStore()
	m.startLab()
	m.lastSweep = time.Time{} // a new engine: it has not swept yet
	for _, s := range m.sessions {
		s.warned = false // the engine remembers warnings in memory only
	}
	m.catchUp()
	m.waitDevices()
	for _, mach := range m.machines {
		m.lastSeen[mach] = m.clock.Now() // their retained status and state
	}
	m.sweepNow(rt)
}

// actDevice happens to a device: it restarts (its relay comes up off), it
// goes silent long enough to be taken offline and then restarts, or its
// relay stops acknowledging commands as a member is let in.
func (m *modelLab) actDevice(rt *rapid.T) {
	mach := rapid.SampledFrom(machinesDrawn(m)).Draw(rt, "machine")
	switch rapid.SampledFrom([]string{"broken_relay", "reboot", "silent"}).Draw(rt, "what") {
	case "reboot":
		m.tick(rt)
		rt.Logf("%s restarts at %s", mach.dev, local(m.clock.Now()).Format(time.DateTime))
		m.stats.add("device: reboot")
		m.reboot(mach)
	case "silent":
		silence := time.Duration(rapid.IntRange(91, 20*60).Draw(rt, "seconds_silent")) * time.Second
		to := m.lastSeen[mach].Add(silence)
		// The server sweeps every 15 s meanwhile (here every minute, under
		// the offline timeout): it judges the device silent only once it has
		// listened for longer than the timeout.
		if min := m.clock.Now().Add(modelOffline + time.Second); to.Before(min) {
			to = min
		}
		rt.Logf("%s is silent until %s; the clock moves there, swept every minute", mach.dev, local(to).Format(time.DateTime))
		m.stats.add("device: silent")
		m.sweepNow(rt, mach)
		for t := m.clock.Now().Add(time.Minute); t.Before(to); t = t.Add(time.Minute) {
			m.clock.Set(t)
			m.sweepNow(rt, mach)
		}
		m.clock.Set(to)
		m.sweepNow(rt, mach)
		m.reboot(mach)
	case "broken_relay":
		m.brokenRelay(rt, mach)
	}
}

// reboot restarts mach's device: a new boot, the relay off. The server
// closes the session it ran (relay_off, without a lock).
func (m *modelLab) reboot(mach *mMachine) {
	now := m.clock.Now()
	boot := m.lab.Engine.DeviceStates()[mach.dev].BootID
	ctx, cancel := context.WithTimeout(m.ctx, waitLong)
	defer cancel()
	mach.device.Reboot(ctx)
	m.lastSeen[mach] = now
	if s := m.openOn(mach); s != nil {
		s.ended, s.reason = now, fablab.EndRelayOff
	}
	m.touched[mach] = true
	m.eventually(mach.dev+"'s new boot taken in", func() bool {
		st := m.lab.Engine.DeviceStates()[mach.dev]
		return st.Online && st.BootID != boot && st.Relay == wire.RelayOff
	})
}

// brokenRelay lets a member in on a device whose relay no longer
// acknowledges: the unlock is sent three times in all, 3 s apart, then the
// session is closed as relay_unconfirmed (not billed) and the machine
// locked (the relay acknowledges again by then).
func (m *modelLab) brokenRelay(rt *rapid.T, mach *mMachine) {
	who := rapid.SampledFrom(tappers(m)).Draw(rt, "who")
	m.tick(rt)
	if w := m.decide(mach, who, m.clock.Now()); w.op != wire.OpUnlock {
		rt.Skip("the tap would not unlock")
	}
	m.stats.add("device: broken relay")
	mach.device.SetNoAck(true)
	m.unacked = mach
	m.tap(rt, mach, who)
	m.unacked = nil
	s := m.sessions[len(m.sessions)-1]
	s.confirmed = false
	unlock := wire.Command{Op: wire.OpUnlock, SessionID: s.id.String()}
	for try := 2; try <= 4; try++ {
		m.clock.Advance(3 * time.Second)
		if try == 4 {
			mach.device.SetNoAck(false) // for the lock
		}
		m.lab.Engine.RetryDue(m.ctx)
		if try < 4 {
			if got := m.next(mach, "the unlock sent again"); got.Op != unlock.Op || got.SessionID != unlock.SessionID {
				rt.Fatalf("%s: %+v, want the unlock of session %s again", mach.dev, got, s.id)
			}
		}
	}
	now := m.clock.Now()
	if got := m.next(mach, "the lock of an unconfirmed session"); got.Op != wire.OpLock || got.SessionID != s.id.String() || got.Reason != fablab.EndRelayUnconfirmed {
		rt.Fatalf("%s: %+v, want the lock of session %s (relay_unconfirmed)", mach.dev, got, s.id)
	}
	rt.Logf("%s: session %s closed at %s, its unlock never acknowledged", mach.dev, s.id, local(now).Format(time.DateTime))
	s.ended, s.reason = now, fablab.EndRelayUnconfirmed
	m.lastSeen[mach] = now // the lock's ack
}

// The comparison.

// check waits until the step's effects have settled (commands
// acknowledged, relays and the server's view of them as the model says),
// then compares the model with the store and runs the store's invariant
// checks.
func (m *modelLab) check(rt *rapid.T) {
	m.eventually("every command acknowledged", func() bool { return m.lab.Engine.PendingCommands() == 0 })
	for _, mach := range m.machines {
		relay, session := wire.RelayOff, ""
		if s := m.openOn(mach); s != nil {
			relay, session = wire.RelayOn, s.id.String()
		}
		d, dev := mach.device, mach.dev
		m.eventually(fmt.Sprintf("%s relay %s (session %q)", dev, relay, session), func() bool {
			r, s := d.Relay()
			return r == relay && s == session
		})
		m.eventually(fmt.Sprintf("the server to see %s's relay %s (session %q)", dev, relay, session), func() bool {
			st := m.lab.Engine.DeviceStates()[dev]
			return st.Relay == relay && st.SessionID == session
		})
		if m.touched[mach] {
			// The relay's state, published after the ack, is taken in
			// before the next step.
			m.eventually(fmt.Sprintf("%s's state %s (session %q) at the broker", dev, relay, session), func() bool { return m.acks.stateSeen(dev, relay, session) })
			m.barrier(mach)
			delete(m.touched, mach)
		}
	}
	m.checkBookings(rt)
	m.checkSessions(rt)
	m.checkCharges(rt)
	m.checkInvoices(rt)
	m.invariants()
}

func (m *modelLab) checkBookings(rt *rapid.T) {
	for _, mach := range m.machines {
		got, err := m.store.Bookings(m.ctx, bolt.BookingFilter{MachineID: mach.id, From: m.started.Add(-24 * time.Hour), To: m.clock.Now().AddDate(0, 2, 0)})
		if err != nil {
			rt.Fatal(err)
		}
		byID := map[fablab.ID]fablab.Booking{}
		for _, b := range got {
			byID[b.ID] = b
		}
		n := 0
		for _, w := range m.bookings {
			if w.mach != mach {
				continue
			}
			n++
			b, ok := byID[w.id]
			if !ok || b.MemberID != w.who.id || !b.Start.Equal(w.start) || !b.End.Equal(w.end) || b.State != w.state {
				rt.Fatalf("booking %s of %s on %s from %s to %s, %s in the model; stored: %+v", w.id, w.who.name, mach.name, local(w.start), local(w.end), w.state, b)
			}
		}
		if len(got) != n {
			rt.Fatalf("%d bookings of %s stored, the model has %d: %+v", len(got), mach.name, n, got)
		}
	}
}

func (m *modelLab) checkSessions(rt *rapid.T) {
	open, err := m.store.OpenSessions(m.ctx)
	if err != nil {
		rt.Fatal(err)
	}
	nOpen := 0
	for _, s := range m.sessions {
		if s.open() {
			nOpen++
		}
	}
	if len(open) != nOpen {
		rt.Fatalf("%d open sessions stored, the model has %d: %+v", len(open), nOpen, open)
	}
	all, err := m.store.SessionsStarted(m.ctx, m.started.Add(-time.Hour), m.clock.Now().Add(time.Hour), 100_000)
	if err != nil {
		rt.Fatal(err)
	}
	if len(all) != len(m.sessions) {
		rt.Fatalf("%d sessions stored, the model has %d: %+v", len(all), len(m.sessions), all)
	}
	byID := map[fablab.ID]fablab.Session{}
	for _, s := range all {
		byID[s.ID] = s
	}
	for _, w := range m.sessions {
		s, ok := byID[w.id]
		if !ok || s.MachineID != w.mach.id || s.MemberID != w.who.id || s.BookingID != w.booking || !s.Started.Equal(w.started) || !s.Until.Equal(w.until) ||
			s.Confirmed != w.confirmed || s.Billable != w.confirmed || s.Offline || s.Open() != w.open() || !w.open() && (!s.Ended.Equal(w.ended) || string(s.EndReason) != w.reason || s.EndedBy != w.endedBy) ||
			(s.ChargeID != 0) != (w.charge != nil) {
			rt.Fatalf("session %s of %s on %s from %s until %s, ended %s %s (charged %v) in the model; stored: %+v",
				w.id, w.who.name, w.mach.name, local(w.started), local(w.until), clock(w.ended), w.reason, w.charge != nil, s)
		}
	}
}

func (m *modelLab) checkCharges(rt *rapid.T) {
	all, err := m.store.Charges(m.ctx, bolt.ChargeFilter{})
	if err != nil {
		rt.Fatal(err)
	}
	if len(all) != len(m.charges) {
		rt.Fatalf("%d charges in the ledger, the model has %d: %+v", len(all), len(m.charges), all)
	}
	bySession, byBooking := map[fablab.ID]fablab.Charge{}, map[fablab.ID]fablab.Charge{}
	for _, c := range all {
		switch c.Kind {
		case fablab.ChargeSession:
			bySession[c.SessionID] = c
		case fablab.ChargeNoShow:
			byBooking[c.BookingID] = c
		default:
			rt.Fatalf("a charge the model never made: %+v", c)
		}
	}
	for _, w := range m.charges {
		var c fablab.Charge
		want := fablab.Charge{Kind: w.kind, Payer: w.who.payer, MemberID: w.who.id, MachineID: w.mach.id, Group: w.who.group,
			Minutes: w.minutes, UnitCents: w.unit, AmountCents: w.amount, VATRateBP: modelVAT, Free: w.free, At: w.at.UTC()}
		if w.session != nil {
			c = bySession[w.session.id]
			want.SessionID, want.BookingID = w.session.id, w.session.booking
		} else {
			c = byBooking[w.booking.id]
			want.BookingID = w.booking.id
		}
		want.ID, want.CreatedAt = c.ID, c.CreatedAt
		if c != want {
			rt.Fatalf("charge in the ledger:\n got %+v\nwant %+v", c, want)
		}
	}
}

func (m *modelLab) checkInvoices(rt *rapid.T) {
	all, err := m.store.Invoices(m.ctx, bolt.InvoiceFilter{})
	if err != nil {
		rt.Fatal(err)
	}
	if len(all) != len(m.invoices) {
		rt.Fatalf("%d invoices issued, the model has %d: %+v", len(all), len(m.invoices), all)
	}
	ledger, err := m.store.Charges(m.ctx, bolt.ChargeFilter{})
	if err != nil {
		rt.Fatal(err)
	}
	chargeID := map[*mCharge]fablab.ID{}
	for _, w := range m.charges {
		for _, c := range ledger {
			if w.session != nil && c.SessionID == w.session.id || w.session == nil && c.Kind == fablab.ChargeNoShow && c.BookingID == w.booking.id {
				chargeID[w] = c.ID
			}
		}
	}
	numbers := map[string][]string{}
	for _, inv := range all {
		var w *mInvoice
		for _, x := range m.runs[inv.Period] {
			if x.payer == inv.Payer {
				w = x
			}
		}
		if w == nil {
			rt.Fatalf("invoice %s of %s for %s: not in the model", inv.Number, inv.Payer, inv.Period)
		}
		numbers[inv.Period] = append(numbers[inv.Period], inv.Number)
		if inv.Kind != fablab.InvoiceKindInvoice || !inv.IssuedAt.Equal(w.issued) || inv.TotalExclCents != w.total || inv.TotalVATCents != vat(w.total) ||
			inv.TotalInclCents != w.total+vat(w.total) || len(inv.Lines) != len(w.charges) {
			rt.Fatalf("invoice %s of %s for %s issued %s: %+v; the model: total %d, issued %s, %d lines", inv.Number, inv.Payer, inv.Period, local(inv.IssuedAt), inv, w.total, local(w.issued), len(w.charges))
		}
		for i, l := range inv.Lines {
			j := slices.IndexFunc(w.charges, func(c *mCharge) bool { return chargeID[c] == l.ChargeID })
			if j < 0 || l.AmountCents != w.charges[j].amount {
				rt.Fatalf("invoice %s line %d %+v is not one of the model's charges", inv.Number, i, l)
			}
		}
	}
	for period, want := range m.numbers {
		got := numbers[period]
		slices.Sort(got)
		if !slices.Equal(got, want) {
			rt.Fatalf("invoices of %s numbered %v, the model says %v", period, got, want)
		}
	}
}
