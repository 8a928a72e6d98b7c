package booking

import (
	"cmp"
	"slices"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// SlotQuery is a search for free time: where could Member book Minutes
// minutes, starting within [From, To)?
type SlotQuery struct {
	Member         *fablab.Member
	Qualifications []fablab.Qualification // the member's
	ByStaff        bool                   // as for Request: staff are not bound by max_ahead_days nor the quota
	Minutes        int
	From, To       time.Time
	Limit          int // how many ranges at most (≥ 1)
	// QualifiedOnly leaves out the machines the member lacks a required
	// training for instead of listing them flagged.
	QualifiedOnly bool
}

// MachineCalendar is what the search needs of one machine.
type MachineCalendar struct {
	Machine *fablab.Machine
	// Occupied is the machine's occupying bookings overlapping
	// [From, To+Minutes) (bolt.Store.Occupied).
	Occupied []fablab.Interval
	// Mine is the member's own occupying bookings on this machine that
	// start in the ISO weeks the search touches, for the weekly quota; only
	// read when the machine has one and the search is not by staff.
	Mine []fablab.Interval
}

// Slot is a free range of one machine: a booking of the searched length may
// start at Start, at End minus that length, and at every start on the
// machine's slot grid in between.
type Slot struct {
	MachineID   fablab.ID `json:"machine_id"`
	MachineName string    `json:"machine_name"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	// TrainingRequired lists the required trainings the member holds no
	// qualification for, valid until the end of a booking in the range. The
	// machine will not unlock for them, and if its rules require training
	// to book, they cannot book it either, until trained.
	TrainingRequired []fablab.ID `json:"training_required,omitempty"`
}

// FreeSlots returns, in start order (then machine id), the first q.Limit
// free ranges across machines: the runs of consecutive starts on a
// machine's slot grid at which a booking of q.Minutes by q.Member would be
// accepted at now. Accepted means: it lies in a free interval of
// Availability (not overlapping a booking or maintenance, within opening
// hours) and passes Check's rules, decided by Check's own functions (the
// terms and the weekly quota). Check's training rule is not applied: a start
// the member lacks a training for is listed with TrainingRequired set (or
// left out with q.QualifiedOnly), so that a maker sees what to train for.
//
// A range ends where the next grid start is refused, or where the missing
// trainings change. refused maps each machine that offers no start at all
// because of a rule that no start can pass (machine unavailable, the length
// against the machine's rules, the member inactive) to that rule's error.
func FreeSlots(s *fablab.Settings, q SlotQuery, machines []MachineCalendar, now time.Time) (slots []Slot, refused map[fablab.ID]error) {
	slots, refused = []Slot{}, map[fablab.ID]error{}
	if q.Limit < 1 || q.Minutes < 1 || !q.From.Before(q.To) {
		return slots, refused
	}
	for i := range machines {
		found, err := machineSlots(s, q, &machines[i], now)
		if err != nil {
			refused[machines[i].Machine.ID] = err
		}
		slots = append(slots, found...)
	}
	slices.SortStableFunc(slots, func(a, b Slot) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.MachineID, b.MachineID)
	})
	if len(slots) > q.Limit {
		slots = slots[:q.Limit]
	}
	return slots, refused
}

// refusedAtOnce are the codes of rules that do not depend on the start (the
// machine, the length against its rules): when one refuses a start, it
// refuses them all. (Starts are taken on the grid, so a slot granularity
// error is about the length.)
var refusedAtOnce = map[string]bool{
	fablab.EINVALID: true, fablab.EINTERNAL: true, fablab.CodeMachineUnavailable: true,
	fablab.CodeTooShort: true, fablab.CodeTooLong: true, fablab.CodeSlotGranularity: true,
}

// endsScan are the codes of rules that, once they refuse a start, refuse
// every later one: how far ahead, and the membership (inactive now, or
// ending before the booking would).
var endsScan = map[string]bool{fablab.CodeTooFarAhead: true, fablab.CodeMemberInactive: true}

// machineSlots scans one machine's grid starts in time order and returns its
// first q.Limit ranges; err is set when a rule refused every start.
func machineSlots(s *fablab.Settings, q SlotQuery, mc *MachineCalendar, now time.Time) ([]Slot, error) {
	m := mc.Machine
	loc := s.Location()
	length := time.Duration(q.Minutes) * time.Minute
	free, _ := Availability(s, m, mc.Occupied, q.From, q.To.Add(length))
	slot := max(m.Rules.SlotMinutes, 1)
	// Every UTC offset in use is a multiple of 15 minutes, so stepping the
	// real clock by gcd(slot, 15) minutes from a UTC-aligned instant meets
	// every instant whose lab wall clock is on the slot grid, including
	// both passes of an hour repeated when the clocks go back.
	step := time.Duration(gcd(slot, 15)) * time.Minute
	quota := m.Rules.WeeklyQuotaMinutes > 0 && !q.ByStaff

	var out []Slot
	var run *Slot // the range being extended
	var lastStart time.Time
	closeRun := func() {
		if run != nil {
			run.End = lastStart.Add(length).In(loc)
			out = append(out, *run)
			run = nil
		}
	}
	if m.State != fablab.MachineAvailable {
		// Availability offers nothing on such a machine; say why in
		// Check's own words.
		return nil, checkTerms(s, Request{Start: q.From, End: q.From.Add(length), Machine: m, Member: q.Member, ByStaff: q.ByStaff}, now)
	}
	fi := 0
	for t := ceilTo(q.From, step); t.Before(q.To) && len(out) < q.Limit; t = t.Add(step) {
		for fi < len(free) && !free[fi].End.After(t) {
			fi++
		}
		if fi == len(free) {
			break
		}
		if t.Before(free[fi].Start) {
			// Nothing can start before the next free interval: jump to it.
			closeRun()
			t = ceilTo(free[fi].Start, step).Add(-step)
			continue
		}
		lt := t.In(loc)
		if minuteOfDay(lt)%slot != 0 {
			continue // not a grid start: neither accepted nor breaking a run
		}
		end := lt.Add(length)
		if end.After(free[fi].End) {
			closeRun()
			continue
		}
		req := Request{Start: lt, End: end, Machine: m, Member: q.Member, Qualifications: q.Qualifications, ByStaff: q.ByStaff}
		err := checkTerms(s, req, now)
		if err == nil && quota {
			week := WeekOf(s, lt)
			err = checkQuota(req, minutesStarting(mc.Mine, week))
		}
		if err != nil {
			code := fablab.ErrorCode(err)
			if refusedAtOnce[code] || code == fablab.CodeMemberInactive && !q.Member.ActiveAt(now) {
				return nil, err
			}
			closeRun()
			if endsScan[code] {
				break
			}
			continue
		}
		missing := fablab.MissingTrainings(m, q.Member.ID, q.Qualifications, end)
		if len(missing) > 0 && q.QualifiedOnly {
			closeRun()
			continue
		}
		if run != nil && !slices.Equal(run.TrainingRequired, missing) {
			closeRun()
		}
		if run == nil {
			run = &Slot{MachineID: m.ID, MachineName: m.Name, Start: lt, TrainingRequired: missing}
		}
		lastStart = lt
	}
	if len(out) < q.Limit {
		closeRun()
	}
	return out, nil
}

// minutesStarting sums the minutes of the bookings starting within week,
// as the store's count for the quota does (bookings are counted in the
// week they start).
func minutesStarting(bookings []fablab.Interval, week fablab.Interval) int {
	total := 0
	for _, b := range bookings {
		if !b.Start.Before(week.Start) && b.Start.Before(week.End) {
			total += int(b.End.Sub(b.Start) / time.Minute)
		}
	}
	return total
}

// ceilTo rounds t up to a multiple of d since the Unix epoch.
func ceilTo(t time.Time, d time.Duration) time.Time {
	r := t.Truncate(d)
	if r.Before(t) {
		r = r.Add(d)
	}
	return r
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
