package booking

import (
	"fmt"
	"strings"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Request is a booking to be checked.
type Request struct {
	Start, End     time.Time
	Machine        *fablab.Machine
	Member         *fablab.Member
	Qualifications []fablab.Qualification // the member's qualifications
	ByStaff        bool                   // made by staff/admin: max_ahead_days and weekly quota do not apply
}

// layout is how instants appear in messages, in lab time.
const layout = "2006-01-02 15:04"

// Check validates a new booking against the machine's rules at instant now.
//
// weekMinutes is what the member already has booked (confirmed or completed)
// on this machine in the ISO week (Monday 00:00 lab time, see WeekOf) that
// contains req.Start. Overlap with other bookings is NOT checked here: the
// store does it inside its write transaction.
//
// It returns nil or a *fablab.Error whose code is, checking in this order:
//   - fablab.EINVALID: end not after start, or longer than fablab.MaxBookingMinutes;
//   - fablab.CodeMachineUnavailable: the machine is in maintenance or retired;
//   - fablab.CodeMemberInactive: the member is suspended or their membership expired (at now);
//   - fablab.CodeInThePast: start is before now truncated to the minute;
//   - fablab.CodeSlotGranularity: start's wall-clock minute of day (lab time) or
//     the duration (real minutes) is not a multiple of Rules.SlotMinutes;
//   - fablab.CodeTooShort, fablab.CodeTooLong: Rules.MinMinutes, Rules.MaxMinutes;
//   - fablab.CodeTooFarAhead: start after now + Rules.MaxAheadDays calendar days, unless ByStaff;
//   - fablab.CodeLabClosed: the booking touches a closure day;
//   - fablab.CodeOutsideOpeningHours: it is not entirely inside one merged opening interval;
//   - fablab.CodeMaintenance: it overlaps a maintenance block;
//   - fablab.CodeTrainingRequired: Rules.RequireTraining and a required training has
//     no qualification valid at req.End;
//   - fablab.CodeWeeklyQuota: Rules.WeeklyQuotaMinutes > 0 and weekMinutes plus the
//     duration exceeds it, unless ByStaff.
//
// A request without machine or member is a caller bug: fablab.EINTERNAL.
func Check(s *fablab.Settings, req Request, now time.Time, weekMinutes int) error {
	if err := checkTerms(s, req, now); err != nil {
		return err
	}
	if err := checkTraining(s, req); err != nil {
		return err
	}
	return checkQuota(req, weekMinutes)
}

// checkTerms applies, in Check's order, every rule of Check up to and
// including maintenance: all but the training and the weekly quota, which
// the slot search (FreeSlots) treats apart. It is the one place those rules
// are decided, for a booking and for a search alike.
func checkTerms(s *fablab.Settings, req Request, now time.Time) error {
	if req.Machine == nil || req.Member == nil {
		return fablab.Errorf(fablab.EINTERNAL, "booking check without machine or member")
	}
	m, r, loc := req.Machine, req.Machine.Rules, s.Location()
	start, end := req.Start.In(loc), req.End.In(loc)
	dur := end.Sub(start)

	if dur <= 0 {
		return fablab.Errorf(fablab.EINVALID, "booking must end after it starts").Say("problem_booking_order")
	}
	if dur > fablab.MaxBookingMinutes*time.Minute {
		return fablab.Errorf(fablab.EINVALID, "a booking may last at most %d minutes (%d days)", fablab.MaxBookingMinutes, fablab.MaxBookingMinutes/(24*60)).
			Say("problem_booking_max_days", "Days", fablab.MaxBookingMinutes/(24*60))
	}

	if m.State != fablab.MachineAvailable {
		state := m.State
		if state == fablab.MachineMaintenance {
			state = "in maintenance"
		}
		return fablab.Errorf(fablab.CodeMachineUnavailable, "%s is %s and cannot be booked; choose another machine", machineName(m), state).
			Say("problem_machine_unavailable_"+m.State, "Machine", m.Name)
	}

	if !req.Member.ActiveAt(now) {
		if req.Member.Status != fablab.StatusActive {
			return fablab.Errorf(fablab.CodeMemberInactive, "the member's account is suspended; only active members can book").Say("problem_member_suspended")
		}
		return fablab.Errorf(fablab.CodeMemberInactive, "the membership expired on %s; renew it to book", req.Member.MembershipUntil.In(loc).Format(layout)).
			Say("problem_membership_expired", "Until", req.Member.MembershipUntil.In(loc))
	}
	if u := req.Member.MembershipUntil; u != nil && req.End.After(*u) {
		return fablab.Errorf(fablab.CodeMemberInactive, "the membership ends on %s, before this booking does; renew it or book an earlier slot", u.In(loc).Format(layout)).
			Say("problem_membership_ends", "Until", u.In(loc))
	}

	earliest := now.Truncate(time.Minute).In(loc)
	if start.Before(earliest) {
		return fablab.Errorf(fablab.CodeInThePast, "the booking starts in the past (%s); choose a start at %s or later", start.Format(layout), earliest.Format(layout)).
			Say("problem_in_the_past", "Start", start, "Earliest", earliest)
	}

	// Rules are validated when a machine is saved; a zero slot would only
	// come from a caller bug and must not divide by zero.
	slot := max(r.SlotMinutes, 1)
	if start.Second() != 0 || start.Nanosecond() != 0 || minuteOfDay(start)%slot != 0 {
		return fablab.Errorf(fablab.CodeSlotGranularity, "bookings on this machine must start on a %d-minute boundary (lab time, e.g. %s); got %s", slot, slotExample(slot), start.Format("15:04:05")).
			Say("problem_slot_start", "Slot", slot, "Example", slotExample(slot), "Got", start.Format("15:04:05"))
	}
	if dur%(time.Duration(slot)*time.Minute) != 0 {
		return fablab.Errorf(fablab.CodeSlotGranularity, "bookings on this machine must last a multiple of %d minutes; got %s", slot, formatDuration(dur)).
			Say("problem_slot_length", "Slot", slot, "Got", int(dur/time.Minute))
	}
	minutes := int(dur / time.Minute)

	if minutes < r.MinMinutes {
		return fablab.Errorf(fablab.CodeTooShort, "bookings on this machine must last at least %d minutes; got %d", r.MinMinutes, minutes).
			Say("problem_too_short", "Min", r.MinMinutes, "Got", minutes)
	}
	if minutes > r.MaxMinutes {
		return fablab.Errorf(fablab.CodeTooLong, "bookings on this machine may last at most %d minutes; got %d", r.MaxMinutes, minutes).
			Say("problem_too_long", "Max", r.MaxMinutes, "Got", minutes)
	}

	if !req.ByStaff {
		// Calendar days in lab time: AddDate keeps the wall clock across DST.
		limit := now.In(loc).AddDate(0, 0, r.MaxAheadDays)
		if start.After(limit) {
			return fablab.Errorf(fablab.CodeTooFarAhead, "bookings on this machine can be made at most %d days ahead; choose a start no later than %s", r.MaxAheadDays, limit.Format(layout)).
				Say("problem_too_far_ahead", "Days", r.MaxAheadDays, "Limit", limit)
		}
	}

	// The days the booking touches: from start's day to the day of its last instant.
	lastDay := fablab.DateOf(end.Add(-time.Nanosecond))
	for d := fablab.DateOf(start); !lastDay.Before(d); d = d.AddDays(1) {
		if s.ClosedOn(d) {
			return fablab.Errorf(fablab.CodeLabClosed, "the lab is closed on %s%s; choose another day", d, closureReason(s, d)).
				Say("problem_lab_closed", "Day", d, "Reason", closureReason(s, d))
		}
	}
	if open := OpenIntervals(s, start, end); len(open) != 1 || !open[0].Start.Equal(start) || !open[0].End.Equal(end) {
		return fablab.Errorf(fablab.CodeOutsideOpeningHours, "the booking must lie within the lab's opening hours; %s", describeDay(s, fablab.DateOf(start))).
			Say(openingKey(s, fablab.DateOf(start)), "Day", fablab.DateOf(start), "Hours", openingHours(s, fablab.DateOf(start)))
	}

	want := fablab.Interval{Start: start, End: end}
	for _, b := range m.Maintenance {
		// Empty or inverted blocks (refused by Machine.Validate) block nothing,
		// as in Availability.
		if b.Start.Before(b.End) && want.Overlaps(fablab.Interval{Start: b.Start, End: b.End}) {
			reason := ""
			if b.Reason != "" {
				reason = " (" + b.Reason + ")"
			}
			return fablab.Errorf(fablab.CodeMaintenance, "the machine is under maintenance from %s to %s%s; book before or after it", b.Start.In(loc).Format(layout), b.End.In(loc).Format(layout), reason).
				Say("problem_maintenance", "From", b.Start.In(loc), "To", b.End.In(loc), "Reason", reason)
		}
	}

	return nil
}

// checkTraining is Check's training rule: with Rules.RequireTraining, every
// required training needs a qualification valid at the booking's end (the
// one rule, fablab.Qualified), so that it lasts the whole booking.
func checkTraining(s *fablab.Settings, req Request) error {
	if !req.Machine.Rules.RequireTraining {
		return nil
	}
	if _, id, ok := fablab.Qualified(req.Machine, req.Member.ID, req.Qualifications, req.End); !ok {
		return fablab.Errorf(fablab.CodeTrainingRequired, "training %s is required to book this machine and must be valid until the end of the booking (%s)", id, req.End.In(s.Location()).Format(layout)).
			Say("problem_training_required", "Training", id.String(), "End", req.End.In(s.Location()))
	}
	return nil
}

// checkQuota is Check's weekly quota rule; weekMinutes is as for Check.
func checkQuota(req Request, weekMinutes int) error {
	r := req.Machine.Rules
	minutes := int(req.End.Sub(req.Start) / time.Minute)
	if r.WeeklyQuotaMinutes > 0 && !req.ByStaff && weekMinutes+minutes > r.WeeklyQuotaMinutes {
		left := max(r.WeeklyQuotaMinutes-weekMinutes, 0)
		return fablab.Errorf(fablab.CodeWeeklyQuota, "the weekly quota on this machine is %d minutes per member; %d minutes remain this week and this booking needs %d", r.WeeklyQuotaMinutes, left, minutes).
			Say("problem_weekly_quota", "Quota", r.WeeklyQuotaMinutes, "Left", left, "Needs", minutes)
	}
	return nil
}

// CheckCancel says whether booking b of machine m may be cancelled at now.
//
// Only confirmed bookings can be cancelled (fablab.CodeNotCancellable). A maker
// (byStaff=false) cannot cancel later than m.Rules.CancelCutoffMinutes before
// b.Start (fablab.CodeCancellationCutoff); cancelling exactly at the cutoff is
// allowed. Staff always can.
func CheckCancel(m *fablab.Machine, b *fablab.Booking, now time.Time, byStaff bool) error {
	if m == nil || b == nil {
		return fablab.Errorf(fablab.EINTERNAL, "cancel check without machine or booking")
	}
	if b.State != fablab.BookingConfirmed {
		state := b.State
		if state == fablab.BookingNoShow {
			state = "a no-show"
		}
		return fablab.Errorf(fablab.CodeNotCancellable, "only confirmed bookings can be cancelled; this one is %s", state).
			Say("problem_not_cancellable_" + b.State)
	}
	if byStaff {
		return nil
	}
	cutoff := b.Start.Add(-time.Duration(m.Rules.CancelCutoffMinutes) * time.Minute)
	if now.After(cutoff) {
		return fablab.Errorf(fablab.CodeCancellationCutoff, "bookings on this machine can be cancelled no later than %d minutes before they start; ask the staff to cancel this one", m.Rules.CancelCutoffMinutes).
			Say("problem_cancel_cutoff", "Minutes", m.Rules.CancelCutoffMinutes)
	}
	return nil
}

func machineName(m *fablab.Machine) string {
	if m.Name == "" {
		return "the machine"
	}
	return fmt.Sprintf("%q", m.Name)
}

// slotExample shows two consecutive accepted start times from 08:00 on, e.g.
// "08:00, 08:30".
func slotExample(slot int) string {
	if slot >= 24*60 {
		return "00:00"
	}
	a := (8*60 + slot - 1) / slot * slot
	if a+slot >= 24*60 {
		a = 0
	}
	return fablab.ClockTime(a).String() + ", " + fablab.ClockTime(a+slot).String()
}

func formatDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	}
	return d.String()
}

func closureReason(s *fablab.Settings, d fablab.Date) string {
	for _, c := range s.Closures {
		if !d.Before(c.From) && !c.To.Before(d) && c.Reason != "" {
			return " (" + c.Reason + ")"
		}
	}
	return ""
}

// openingKey is the key of the opening-hours problem for day d: the lab
// is closed that weekday, or open at some hours.
func openingKey(s *fablab.Settings, d fablab.Date) string {
	if len(s.OpeningHours.Day(d.Weekday())) == 0 {
		return "problem_closed_weekday"
	}
	return "problem_outside_hours"
}

// openingHours lists the lab's hours on d: "09:00–12:00, 14:00–21:00".
func openingHours(s *fablab.Settings, d fablab.Date) string {
	rs := s.OpeningHours.Day(d.Weekday())
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.Open.String() + "–" + r.Close.String()
	}
	return strings.Join(parts, ", ")
}

// describeDay says when the lab is open on d, e.g. "on Sunday 2026-03-29 it is
// open 01:00–04:00".
func describeDay(s *fablab.Settings, d fablab.Date) string {
	if len(s.OpeningHours.Day(d.Weekday())) == 0 {
		return fmt.Sprintf("it is closed on %ss", d.Weekday())
	}
	return fmt.Sprintf("on %s %s it is open %s", d.Weekday(), d, openingHours(s, d))
}
