package fablab

import "time"

// NoShowDue reports whether booking b of a machine with rules is a no-show
// at now: it is confirmed, the machine releases unclaimed bookings
// (NoShowReleaseMinutes > 0), that many minutes have passed since its
// start, and none of sessions (the machine's) was started by the booking's
// member from CheckInMinutes before its start (a tap in the check-in
// window claims the booking) to NoShowReleaseMinutes after it.
func NoShowDue(b *Booking, rules BookingRules, sessions []Session, now time.Time) bool {
	if b.State != BookingConfirmed || rules.NoShowReleaseMinutes <= 0 {
		return false
	}
	release := b.Start.Add(time.Duration(rules.NoShowReleaseMinutes) * time.Minute)
	if now.Before(release) {
		return false
	}
	from := b.Start.Add(-time.Duration(rules.CheckInMinutes) * time.Minute)
	for _, s := range sessions {
		if s.MachineID == b.MachineID && s.MemberID == b.MemberID && !s.Started.Before(from) && !s.Started.After(release) {
			return false
		}
	}
	return true
}
