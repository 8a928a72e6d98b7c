package booking

import (
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

const laserSafety fablab.ID = 7

func ptr[T any](v T) *T { return &v }

// baseRequest is a valid booking on Tuesday 9 June 2026 10:00–12:00 (lab
// time) of a laser that needs training 7, by an active maker holding it.
func baseRequest() Request {
	m := machine(func(m *fablab.Machine) {
		m.Rules = fablab.BookingRules{
			SlotMinutes: 30, MinMinutes: 60, MaxMinutes: 240, MaxAheadDays: 28,
			WeeklyQuotaMinutes: 600, CancelCutoffMinutes: 120, RequireTraining: true,
		}
		m.RequiredTrainings = []fablab.ID{laserSafety}
		m.Maintenance = []fablab.MaintenanceBlock{maintenance(local(2026, 6, 10, 14, 0), local(2026, 6, 10, 16, 0))}
	})
	return Request{
		Start: local(2026, 6, 9, 10, 0), End: local(2026, 6, 9, 12, 0),
		Machine: m,
		Member: &fablab.Member{
			ID: 42, Email: "ada@example.org", Name: "Ada", Role: fablab.RoleMaker, Group: "student",
			Payer: fablab.PayerSelf, Status: fablab.StatusActive, MembershipUntil: ptr(local(2027, 1, 1, 0, 0)),
		},
		Qualifications: []fablab.Qualification{
			{MemberID: 42, TrainingID: 3},
			{MemberID: 42, TrainingID: laserSafety, GrantedBy: 1, GrantedAt: local(2026, 1, 10, 10, 0), ExpiresAt: ptr(local(2026, 12, 31, 0, 0))},
		},
	}
}

// baseNow is Monday 8 June 2026 08:15:20 lab time.
var baseNow = local(2026, 6, 8, 8, 15).Add(20 * time.Second)

func TestCheck(t *testing.T) {
	tue := func(h, m int) time.Time { return local(2026, 6, 9, h, m) }
	wed := func(h, m int) time.Time { return local(2026, 6, 10, h, m) }
	span := func(a, b time.Time) func(r *Request) {
		return func(r *Request) { r.Start, r.End = a, b }
	}
	tests := []struct {
		name     string
		settings func(s *fablab.Settings)
		req      func(r *Request)
		now      time.Time // baseNow when zero
		week     int
		code     string // "" = accepted
		msg      string // a part of the message
	}{
		{name: "valid booking"},
		{name: "valid booking given in UTC", req: span(tue(10, 0).UTC(), tue(12, 0).UTC())},
		{name: "at the weekly quota exactly", week: 480},
		{name: "starting in the current minute", now: tue(10, 0).Add(59 * time.Second)},
		{name: "exactly max_ahead_days ahead", req: span(local(2026, 7, 6, 9, 0), local(2026, 7, 6, 10, 0)), now: local(2026, 6, 8, 9, 0)},
		{name: "staff: far ahead and over quota", req: func(r *Request) {
			r.Start, r.End, r.ByStaff = local(2026, 9, 1, 10, 0), local(2026, 9, 1, 12, 0), true
		}, week: 590},
		{name: "touching a maintenance block", req: span(wed(12, 0), wed(14, 0))},
		{name: "right after a maintenance block", req: span(wed(16, 0), wed(18, 0))},
		{name: "an empty maintenance block blocks nothing", req: func(r *Request) {
			r.Machine.Maintenance = []fablab.MaintenanceBlock{maintenance(tue(11, 0), tue(11, 0)), maintenance(tue(11, 30), tue(10, 30))}
		}},
		{name: "training not required to book", req: func(r *Request) { r.Machine.Rules.RequireTraining = false; r.Qualifications = nil }},
		{name: "qualification without expiry", req: func(r *Request) { r.Qualifications[1].ExpiresAt = nil }},
		{
			name: "across midnight inside one merged interval",
			settings: func(s *fablab.Settings) {
				s.OpeningHours.Saturday = rng(hm(10, 0), 24*60)
				s.OpeningHours.Sunday = rng(0, hm(6, 0))
			},
			req: span(local(2026, 6, 13, 23, 0), local(2026, 6, 14, 1, 0)),
		},
		{
			name: "ending at midnight before a closure day",
			settings: func(s *fablab.Settings) {
				s.OpeningHours.Monday = rng(hm(9, 0), 24*60)
				s.Closures = closure(2026, 6, 9)
			},
			req: span(local(2026, 6, 8, 22, 0), tue(0, 0)),
		},

		{name: "EINVALID: end equals start", req: span(tue(10, 0), tue(10, 0)), code: fablab.EINVALID, msg: "must end after it starts"},
		{name: "EINVALID: end before start", req: span(tue(12, 0), tue(10, 0)), code: fablab.EINVALID, msg: "must end after it starts"},
		{name: "EINVALID: longer than a week", req: func(r *Request) {
			r.Start, r.End, r.ByStaff = tue(10, 0), local(2026, 6, 16, 10, 30), true
		}, code: fablab.EINVALID, msg: "at most 10080 minutes"},
		{name: "machine in maintenance", req: func(r *Request) { r.Machine.State = fablab.MachineMaintenance }, code: fablab.CodeMachineUnavailable, msg: "in maintenance"},
		{name: "machine retired", req: func(r *Request) { r.Machine.State = fablab.MachineRetired }, code: fablab.CodeMachineUnavailable, msg: "retired"},
		{name: "member suspended", req: func(r *Request) { r.Member.Status = fablab.StatusSuspended }, code: fablab.CodeMemberInactive, msg: "suspended"},
		{name: "membership expired", req: func(r *Request) { r.Member.MembershipUntil = ptr(local(2026, 6, 1, 0, 0)) }, code: fablab.CodeMemberInactive, msg: "expired on 2026-06-01"},
		{name: "in the past", req: span(local(2026, 6, 8, 8, 0), local(2026, 6, 8, 10, 0)), code: fablab.CodeInThePast, msg: "2026-06-08 08:15 or later"},
		{name: "in the past by a minute", now: tue(10, 1), code: fablab.CodeInThePast},
		{name: "start off the slot grid", req: span(tue(10, 10), tue(12, 10)), code: fablab.CodeSlotGranularity, msg: "30-minute boundary (lab time, e.g. 08:00, 08:30)"},
		{name: "start with seconds", req: span(tue(10, 0).Add(30*time.Second), tue(12, 0).Add(30*time.Second)), code: fablab.CodeSlotGranularity},
		{name: "duration off the slot grid", req: span(tue(10, 0), tue(11, 10)), code: fablab.CodeSlotGranularity, msg: "multiple of 30 minutes"},
		{name: "too short", req: span(tue(10, 0), tue(10, 30)), code: fablab.CodeTooShort, msg: "must last at least 60 minutes"},
		{name: "too long", req: span(tue(10, 0), tue(15, 0)), code: fablab.CodeTooLong, msg: "at most 240 minutes"},
		{name: "too far ahead", req: span(local(2026, 7, 6, 10, 0), local(2026, 7, 6, 11, 0)), code: fablab.CodeTooFarAhead, msg: "at most 28 days ahead; choose a start no later than 2026-07-06 08:15"},
		{name: "lab closed", settings: func(s *fablab.Settings) { s.Closures = closure(2026, 6, 9) }, code: fablab.CodeLabClosed, msg: "closed on 2026-06-09 (summer break)"},
		{
			name:     "lab closed on the second day of a booking",
			settings: func(s *fablab.Settings) { allDays(s, rng(0, 24*60)); s.Closures = closure(2026, 6, 10) },
			req:      span(tue(23, 0), wed(1, 0)),
			code:     fablab.CodeLabClosed,
		},
		{name: "after closing time", req: span(tue(20, 0), tue(22, 0)), code: fablab.CodeOutsideOpeningHours, msg: "on Tuesday 2026-06-09 it is open 09:00–21:00"},
		{name: "before opening time", req: span(tue(8, 30), tue(10, 0)), code: fablab.CodeOutsideOpeningHours},
		{name: "on a closed weekday", req: span(local(2026, 6, 14, 10, 0), local(2026, 6, 14, 12, 0)), code: fablab.CodeOutsideOpeningHours, msg: "closed on Sundays"},
		{
			name: "over a lunch break",
			settings: func(s *fablab.Settings) {
				s.OpeningHours.Tuesday = []fablab.TimeRange{{Open: hm(9, 0), Close: hm(12, 0)}, {Open: hm(13, 0), Close: hm(18, 0)}}
			},
			req:  span(tue(11, 0), tue(14, 0)),
			code: fablab.CodeOutsideOpeningHours, msg: "09:00–12:00, 13:00–18:00",
		},
		{name: "overlapping maintenance", req: span(wed(13, 0), wed(15, 0)), code: fablab.CodeMaintenance, msg: "from 2026-06-10 14:00 to 2026-06-10 16:00 (new tube)"},
		{name: "inside maintenance", req: span(wed(14, 0), wed(15, 0)), code: fablab.CodeMaintenance},
		{name: "training missing", req: func(r *Request) { r.Qualifications = r.Qualifications[:1] }, code: fablab.CodeTrainingRequired, msg: "training 7 is required"},
		{name: "training expires before the booking ends", req: func(r *Request) { r.Qualifications[1].ExpiresAt = ptr(tue(11, 0)) }, code: fablab.CodeTrainingRequired, msg: "training 7"},
		{name: "training expires when the booking ends", req: func(r *Request) { r.Qualifications[1].ExpiresAt = ptr(tue(12, 0)) }, code: fablab.CodeTrainingRequired},
		{name: "training held by another member", req: func(r *Request) { r.Qualifications[1].MemberID = 43 }, code: fablab.CodeTrainingRequired},
		{name: "staff booking still needs the training", req: func(r *Request) { r.ByStaff = true; r.Qualifications = nil }, code: fablab.CodeTrainingRequired},
		{name: "weekly quota exceeded", week: 510, code: fablab.CodeWeeklyQuota, msg: "90 minutes remain"},
		{name: "weekly quota already used up", week: 700, code: fablab.CodeWeeklyQuota, msg: "0 minutes remain"},

		// When several rules are broken, the first in Check's order wins.
		{name: "order: invalid before unavailable", req: func(r *Request) { r.End = r.Start; r.Machine.State = fablab.MachineRetired }, code: fablab.EINVALID},
		{name: "order: unavailable before inactive", req: func(r *Request) { r.Machine.State = fablab.MachineRetired; r.Member.Status = fablab.StatusSuspended }, code: fablab.CodeMachineUnavailable},
		{name: "order: inactive before past", req: func(r *Request) { r.Member.Status = fablab.StatusSuspended; r.Start = baseNow.Add(-time.Hour) }, code: fablab.CodeMemberInactive},
		{name: "order: past before granularity", req: span(local(2026, 6, 8, 7, 10), local(2026, 6, 8, 9, 10)), code: fablab.CodeInThePast},
		{name: "order: granularity before too short", req: span(tue(10, 0), tue(10, 10)), code: fablab.CodeSlotGranularity},
		{name: "order: too long before too far ahead", req: span(local(2026, 8, 4, 10, 0), local(2026, 8, 4, 18, 0)), code: fablab.CodeTooLong},
		{name: "order: too far ahead before closed", settings: func(s *fablab.Settings) { s.Closures = closure(2026, 8, 4) }, req: span(local(2026, 8, 4, 10, 0), local(2026, 8, 4, 12, 0)), code: fablab.CodeTooFarAhead},
		{name: "order: closed before outside hours", settings: func(s *fablab.Settings) { s.Closures = closure(2026, 6, 9) }, req: span(tue(20, 0), tue(22, 0)), code: fablab.CodeLabClosed},
		{name: "order: outside hours before maintenance", req: func(r *Request) {
			r.Start, r.End = wed(20, 0), wed(22, 0)
			r.Machine.Maintenance = []fablab.MaintenanceBlock{maintenance(wed(19, 0), wed(23, 0))}
		}, code: fablab.CodeOutsideOpeningHours},
		{name: "order: maintenance before training", req: func(r *Request) { r.Start, r.End = wed(14, 0), wed(15, 0); r.Qualifications = nil }, code: fablab.CodeMaintenance},
		{name: "order: training before quota", req: func(r *Request) { r.Qualifications = nil }, week: 600, code: fablab.CodeTrainingRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := labSettings(t, tt.settings)
			req := baseRequest()
			if tt.req != nil {
				tt.req(&req)
			}
			now := tt.now
			if now.IsZero() {
				now = baseNow
			}
			err := Check(s, req, now, tt.week)
			if got := fablab.ErrorCode(err); got != tt.code {
				t.Fatalf("Check() code = %q (%v), want %q", got, err, tt.code)
			}
			if err != nil {
				t.Log(fablab.ErrorMessage(err))
			}
			if err != nil && !strings.Contains(fablab.ErrorMessage(err), tt.msg) {
				t.Errorf("message %q does not contain %q", fablab.ErrorMessage(err), tt.msg)
			}
		})
	}
}

func closure(y int, m time.Month, d int) []fablab.Closure {
	day := fablab.Date{Year: y, Month: m, Day: d}
	return []fablab.Closure{{From: day, To: day, Reason: "summer break"}}
}

func TestCheckWithoutMachineOrMember(t *testing.T) {
	s := labSettings(t, nil)
	for name, edit := range map[string]func(r *Request){
		"no machine": func(r *Request) { r.Machine = nil },
		"no member":  func(r *Request) { r.Member = nil },
	} {
		t.Run(name, func(t *testing.T) {
			req := baseRequest()
			edit(&req)
			if code := fablab.ErrorCode(Check(s, req, baseNow, 0)); code != fablab.EINTERNAL {
				t.Errorf("code = %q, want %q", code, fablab.EINTERNAL)
			}
		})
	}
}

// TestCheckDST books around the DST changes of 2026 with Sunday hours
// 01:00–04:00: the slot grid is in wall-clock minutes, durations are real.
func TestCheckDST(t *testing.T) {
	tests := []struct {
		name       string
		start, end time.Time
		rules      func(r *fablab.BookingRules)
		week       int
		code       string
		msg        string
	}{
		{
			name:  "March 01:30-03:30 lasts one real hour",
			start: local(2026, 3, 29, 1, 30), end: local(2026, 3, 29, 3, 30),
		},
		{
			name:  "March 01:30-03:30 is too short for a 90-minute minimum",
			start: local(2026, 3, 29, 1, 30), end: local(2026, 3, 29, 3, 30),
			rules: func(r *fablab.BookingRules) { r.MinMinutes = 90 },
			code:  fablab.CodeTooShort, msg: "got 60",
		},
		{
			name:  "March 01:30-03:30 counts 60 minutes against the quota",
			start: local(2026, 3, 29, 1, 30), end: local(2026, 3, 29, 3, 30),
			rules: func(r *fablab.BookingRules) { r.WeeklyQuotaMinutes = 120 },
			week:  60,
		},
		{
			name:  "March 01:30 is off an hourly grid",
			start: local(2026, 3, 29, 1, 30), end: local(2026, 3, 29, 3, 30),
			rules: func(r *fablab.BookingRules) { r.SlotMinutes, r.MinMinutes = 60, 60 },
			code:  fablab.CodeSlotGranularity,
		},
		{
			name:  "March 01:00-03:00 is one real hour on an hourly grid",
			start: local(2026, 3, 29, 1, 0), end: local(2026, 3, 29, 3, 0),
			rules: func(r *fablab.BookingRules) { r.SlotMinutes, r.MinMinutes = 60, 60 },
		},
		{
			name:  "March 03:30-04:30 runs past closing",
			start: local(2026, 3, 29, 3, 30), end: local(2026, 3, 29, 4, 30),
			code: fablab.CodeOutsideOpeningHours,
		},
		{
			name:  "October 01:30 CEST - 03:30 CET lasts three real hours",
			start: utc(2026, 10, 24, 23, 30), end: utc(2026, 10, 25, 2, 30),
		},
		{
			name:  "October 01:30 CEST - 03:30 CET is too long for two hours",
			start: utc(2026, 10, 24, 23, 30), end: utc(2026, 10, 25, 2, 30),
			rules: func(r *fablab.BookingRules) { r.MaxMinutes = 120 },
			code:  fablab.CodeTooLong, msg: "got 180",
		},
		{
			name:  "October: starting at the second 02:30 is on the grid",
			start: utc(2026, 10, 25, 1, 30), end: utc(2026, 10, 25, 3, 0),
		},
		{
			name:  "winter: a 2-hour grid is in lab time (10:00 CET is 09:00 UTC)",
			start: local(2026, 1, 12, 10, 0), end: local(2026, 1, 12, 12, 0),
			rules: func(r *fablab.BookingRules) { r.SlotMinutes, r.MinMinutes = 120, 120 },
		},
		{
			name:  "winter: 11:00 CET is off a 2-hour grid",
			start: local(2026, 1, 12, 11, 0), end: local(2026, 1, 12, 13, 0),
			rules: func(r *fablab.BookingRules) { r.SlotMinutes, r.MinMinutes = 120, 120 },
			code:  fablab.CodeSlotGranularity,
		},
	}
	s := labSettings(t, func(s *fablab.Settings) { s.OpeningHours.Sunday = rng(hm(1, 0), hm(4, 0)) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := baseRequest()
			req.Start, req.End = tt.start, tt.end
			req.Machine.Rules = fablab.BookingRules{SlotMinutes: 30, MinMinutes: 30, MaxMinutes: 240, MaxAheadDays: 28}
			if tt.rules != nil {
				tt.rules(&req.Machine.Rules)
			}
			now := tt.start.AddDate(0, 0, -3)
			err := Check(s, req, now, tt.week)
			if got := fablab.ErrorCode(err); got != tt.code {
				t.Fatalf("Check() code = %q (%v), want %q", got, err, tt.code)
			}
			if err != nil {
				t.Log(fablab.ErrorMessage(err))
			}
			if err != nil && !strings.Contains(fablab.ErrorMessage(err), tt.msg) {
				t.Errorf("message %q does not contain %q", fablab.ErrorMessage(err), tt.msg)
			}
		})
	}
}

func TestCheckTooFarAheadAcrossDST(t *testing.T) {
	// Calendar days in lab time: from Saturday 28 March 10:00 CET, one day
	// ahead is Sunday 29 March 10:00 CEST — 23 real hours later.
	s := labSettings(t, func(s *fablab.Settings) { allDays(s, rng(0, 24*60)) })
	req := baseRequest()
	req.Machine.Rules.MaxAheadDays = 1
	now := local(2026, 3, 28, 10, 0)
	for _, tt := range []struct {
		start time.Time
		code  string
	}{
		{local(2026, 3, 29, 10, 0), ""},
		{local(2026, 3, 29, 10, 30), fablab.CodeTooFarAhead},
	} {
		req.Start, req.End = tt.start, tt.start.Add(time.Hour)
		if got := fablab.ErrorCode(Check(s, req, now, 0)); got != tt.code {
			t.Errorf("start %s: code = %q, want %q", tt.start, got, tt.code)
		}
	}
}

func TestCheckCancel(t *testing.T) {
	m := machine(func(m *fablab.Machine) { m.Rules.CancelCutoffMinutes = 120 })
	start := local(2026, 6, 9, 10, 0)
	tests := []struct {
		name    string
		state   string
		now     time.Time
		byStaff bool
		code    string
	}{
		{name: "maker well before the cutoff", state: fablab.BookingConfirmed, now: start.Add(-24 * time.Hour)},
		{name: "maker exactly at the cutoff", state: fablab.BookingConfirmed, now: start.Add(-120 * time.Minute)},
		{name: "maker just after the cutoff", state: fablab.BookingConfirmed, now: start.Add(-120*time.Minute + time.Second), code: fablab.CodeCancellationCutoff},
		{name: "maker after the start", state: fablab.BookingConfirmed, now: start.Add(time.Minute), code: fablab.CodeCancellationCutoff},
		{name: "staff after the cutoff", state: fablab.BookingConfirmed, now: start.Add(-time.Minute), byStaff: true},
		{name: "staff after the start", state: fablab.BookingConfirmed, now: start.Add(30 * time.Minute), byStaff: true},
		{name: "already cancelled", state: fablab.BookingCancelled, now: start.Add(-24 * time.Hour), code: fablab.CodeNotCancellable},
		{name: "completed", state: fablab.BookingCompleted, now: start.Add(24 * time.Hour), code: fablab.CodeNotCancellable},
		{name: "no-show", state: fablab.BookingNoShow, now: start.Add(time.Hour), code: fablab.CodeNotCancellable},
		{name: "staff cannot cancel a cancelled booking", state: fablab.BookingCancelled, now: start.Add(-24 * time.Hour), byStaff: true, code: fablab.CodeNotCancellable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fablab.Booking{ID: 9, MachineID: m.ID, MemberID: 42, Start: start, End: start.Add(2 * time.Hour), State: tt.state}
			err := CheckCancel(m, b, tt.now, tt.byStaff)
			if got := fablab.ErrorCode(err); got != tt.code {
				t.Fatalf("CheckCancel() code = %q (%v), want %q", got, err, tt.code)
			}
		})
	}
	if code := fablab.ErrorCode(CheckCancel(m, nil, start, true)); code != fablab.EINTERNAL {
		t.Errorf("nil booking: code = %q, want %q", code, fablab.EINTERNAL)
	}
}

func TestSlotExample(t *testing.T) {
	for slot, want := range map[int]string{5: "08:00, 08:05", 30: "08:00, 08:30", 45: "08:15, 09:00", 120: "08:00, 10:00", 720: "00:00, 12:00", 1440: "00:00"} {
		if got := slotExample(slot); got != want {
			t.Errorf("slotExample(%d) = %q, want %q", slot, got, want)
		}
	}
}
