package fablab

import "time"

// Why a member may not use a machine (Eligibility.Reason), in the order
// Eligible checks them (DESIGN §3 rules 3 to 5).
const (
	IneligibleInactive    = "member_inactive"     // suspended or membership expired
	IneligibleUnavailable = "machine_unavailable" // retired, or in maintenance for a maker
	IneligibleTraining    = "training_required"   // a required training is not held
)

// Eligibility is the verdict of Eligible: whether a member may use a
// machine as far as who they are goes. Bookings and sessions are not part
// of it.
type Eligibility struct {
	OK     bool
	Reason string // Ineligible*, when not OK
	// Missing is the first required training the member holds no valid
	// qualification for (Reason IneligibleTraining).
	Missing ID
	// Staff is set for staff and admins.
	Staff bool
	// Override is set when staff may use a machine in maintenance, which
	// makers may not (logged as such).
	Override bool
	// Until is when the right ends by itself: the first of the
	// membership's end and the expiry of the qualifications it rests on.
	// Zero: it does not end.
	Until time.Time
}

// Eligible is the one rule of who may use a machine, used by the tap
// decision, the booking check and the offline allowlist (DESIGN §3 rules 3
// to 5, in that order): the member is active at t; the machine is
// available (or in maintenance and the member is staff); and the member
// holds, valid at t, a qualification for every training the machine
// requires (see Qualified). Staff need the trainings too.
func Eligible(m *Member, mc *Machine, quals []Qualification, t time.Time) Eligibility {
	e := Eligibility{Staff: m.Role.AtLeast(RoleStaff)}
	if !m.ActiveAt(t) {
		e.Reason = IneligibleInactive
		return e
	}
	if mc.State != MachineAvailable {
		if !e.Staff || mc.State != MachineMaintenance {
			e.Reason = IneligibleUnavailable
			return e
		}
		e.Override = true
	}
	until, missing, ok := Qualified(mc, m.ID, quals, t)
	if !ok {
		e.Reason, e.Missing = IneligibleTraining, missing
		return e
	}
	if m.MembershipUntil != nil && (until.IsZero() || m.MembershipUntil.Before(until)) {
		until = *m.MembershipUntil
	}
	e.OK, e.Until = true, until
	return e
}

// Qualified reports whether member holds, valid at t, a qualification for
// every training machine mc requires. A qualification counts when it is the
// member's (or names no member: a list already filtered by member).
// missing is the first required training without one; until is the
// earliest expiry among the best qualifications held (zero: none expires).
func Qualified(mc *Machine, member ID, quals []Qualification, t time.Time) (until time.Time, missing ID, ok bool) {
	for _, training := range mc.RequiredTrainings {
		best := bestQualification(training, member, quals, t)
		if best == nil {
			return time.Time{}, training, false
		}
		if best.ExpiresAt != nil && (until.IsZero() || best.ExpiresAt.Before(until)) {
			until = *best.ExpiresAt
		}
	}
	return until, 0, true
}

// MissingTrainings lists, in the machine's order, every training mc requires
// that member holds no qualification for valid at t (by the rule of
// Qualified); nil when none is missing. It names them all where Qualified
// stops at the first, for pages that tell a maker what to train for.
func MissingTrainings(mc *Machine, member ID, quals []Qualification, t time.Time) []ID {
	var out []ID
	for _, training := range mc.RequiredTrainings {
		if bestQualification(training, member, quals, t) == nil {
			out = append(out, training)
		}
	}
	return out
}

// bestQualification is the member's qualification for training valid at t
// that lasts longest (one that never expires first), or nil.
func bestQualification(training, member ID, quals []Qualification, t time.Time) *Qualification {
	var best *Qualification
	for i := range quals {
		q := &quals[i]
		if q.TrainingID != training || (q.MemberID != member && q.MemberID != 0) || !q.ValidAt(t) {
			continue
		}
		if best == nil || best.ExpiresAt != nil && (q.ExpiresAt == nil || q.ExpiresAt.After(*best.ExpiresAt)) {
			best = q
		}
	}
	return best
}
