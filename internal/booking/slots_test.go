package booking

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// slotMaker is an active maker holding the laser safety training until the
// end of 2026.
func slotMaker() (*fablab.Member, []fablab.Qualification) {
	m := &fablab.Member{
		ID: 42, Email: "ada@example.org", Name: "Ada", Role: fablab.RoleMaker, Group: "student",
		Payer: fablab.PayerSelf, Status: fablab.StatusActive,
	}
	return m, []fablab.Qualification{{MemberID: 42, TrainingID: laserSafety, ExpiresAt: ptr(local(2026, 12, 31, 0, 0))}}
}

// slotMachine is machine id with 30-minute slots, 30 min to 4 h, 28 days
// ahead, requiring laser safety, edited by edit.
func slotMachine(id fablab.ID, edit func(m *fablab.Machine)) *fablab.Machine {
	return machine(func(m *fablab.Machine) {
		m.ID, m.Name = id, fmt.Sprintf("Laser %d", id)
		m.Rules = fablab.BookingRules{SlotMinutes: 30, MinMinutes: 30, MaxMinutes: 240, MaxAheadDays: 28, RequireTraining: true}
		m.RequiredTrainings = []fablab.ID{laserSafety}
		if edit != nil {
			edit(m)
		}
	})
}

func fmtSlots(ss []Slot) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "\n  m%d [%s, %s)", s.MachineID, s.Start.In(paris).Format("Mon 01-02 15:04 MST"), s.End.In(paris).Format("Mon 01-02 15:04 MST"))
		if len(s.TrainingRequired) > 0 {
			fmt.Fprintf(&b, " training %v", s.TrainingRequired)
		}
	}
	if len(ss) == 0 {
		return " (none)"
	}
	return b.String()
}

// sl is a wanted slot.
func sl(m fablab.ID, a, b time.Time, training ...fablab.ID) Slot {
	return Slot{MachineID: m, MachineName: fmt.Sprintf("Laser %d", m), Start: a, End: b, TrainingRequired: training}
}

func sameSlots(a, b []Slot) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.MachineID != y.MachineID || x.MachineName != y.MachineName || !x.Start.Equal(y.Start) || !x.End.Equal(y.End) || fmt.Sprint(x.TrainingRequired) != fmt.Sprint(y.TrainingRequired) {
			return false
		}
	}
	return true
}

func TestFreeSlots(t *testing.T) {
	// Monday 8 June 2026; the default lab is open Mon–Fri 09:00–21:00 and
	// Saturday 10:00–18:00.
	mon := func(h, m int) time.Time { return local(2026, 6, 8, h, m) }
	tue := func(h, m int) time.Time { return local(2026, 6, 9, h, m) }
	wed := func(h, m int) time.Time { return local(2026, 6, 10, h, m) }
	now := mon(8, 15).Add(20 * time.Second)
	maker, quals := slotMaker()
	busyMonday := []fablab.Interval{iv(mon(10, 0), mon(11, 0)), iv(mon(12, 0), mon(15, 0))}

	// Sunday opening hours around the two DST changes of 2026 (29 March,
	// 25 October).
	sundayNight := func(open, close fablab.ClockTime) func(s *fablab.Settings) {
		return func(s *fablab.Settings) { s.OpeningHours.Sunday = rng(open, close) }
	}

	tests := []struct {
		name     string
		settings func(s *fablab.Settings)
		machines []MachineCalendar
		edit     func(q *SlotQuery)
		now      time.Time // now when zero
		want     []Slot
		refused  map[fablab.ID]string
	}{
		{
			name:     "two hours around Monday's bookings, then whole days",
			machines: []MachineCalendar{{Machine: slotMachine(1, nil), Occupied: busyMonday}},
			// 09:00–10:00 and 11:00–12:00 are too short for two hours.
			want: []Slot{sl(1, mon(15, 0), mon(21, 0)), sl(1, tue(9, 0), tue(21, 0)), sl(1, wed(9, 0), wed(21, 0))},
		},
		{
			name: "several machines in start order, limit across them",
			machines: []MachineCalendar{
				{Machine: slotMachine(2, nil)},
				{Machine: slotMachine(1, nil), Occupied: busyMonday},
			},
			want: []Slot{sl(2, mon(9, 0), mon(21, 0)), sl(1, mon(15, 0), mon(21, 0)), sl(1, tue(9, 0), tue(21, 0))},
		},
		{
			name: "a closure day is skipped",
			settings: func(s *fablab.Settings) {
				s.Closures = []fablab.Closure{{From: fablab.DateOf(tue(0, 0)), To: fablab.DateOf(tue(0, 0)), Reason: "inventory"}}
			},
			machines: []MachineCalendar{{Machine: slotMachine(1, nil), Occupied: busyMonday}},
			want:     []Slot{sl(1, mon(15, 0), mon(21, 0)), sl(1, wed(9, 0), wed(21, 0)), sl(1, local(2026, 6, 11, 9, 0), local(2026, 6, 11, 21, 0))},
		},
		{
			name: "a maintenance block splits a day",
			machines: []MachineCalendar{{Machine: slotMachine(1, func(m *fablab.Machine) {
				m.Maintenance = []fablab.MaintenanceBlock{maintenance(mon(9, 0), mon(13, 30))}
			})}},
			edit: func(q *SlotQuery) { q.Limit = 2 },
			want: []Slot{sl(1, mon(13, 30), mon(21, 0)), sl(1, tue(9, 0), tue(21, 0))},
		},
		{
			name:     "how far ahead a maker may book ends the search",
			machines: []MachineCalendar{{Machine: slotMachine(1, func(m *fablab.Machine) { m.Rules.MaxAheadDays = 1 })}},
			// Starts up to Tuesday 08:15:20: only Monday.
			want: []Slot{sl(1, mon(9, 0), mon(21, 0))},
		},
		{
			name:     "staff are not bound by how far ahead",
			machines: []MachineCalendar{{Machine: slotMachine(1, func(m *fablab.Machine) { m.Rules.MaxAheadDays = 1 })}},
			edit:     func(q *SlotQuery) { q.ByStaff, q.Limit = true, 2 },
			want:     []Slot{sl(1, mon(9, 0), mon(21, 0)), sl(1, tue(9, 0), tue(21, 0))},
		},
		{
			name:     "no start in the past",
			machines: []MachineCalendar{{Machine: slotMachine(1, nil)}},
			now:      mon(12, 31).Add(10 * time.Second),
			edit:     func(q *SlotQuery) { q.From, q.Limit = mon(0, 0), 1 },
			want:     []Slot{sl(1, mon(13, 0), mon(21, 0))},
		},
		{
			name: "the weekly quota: a full week is skipped",
			machines: []MachineCalendar{{
				Machine: slotMachine(1, func(m *fablab.Machine) { m.Rules.WeeklyQuotaMinutes = 240 }),
				// 3 h already booked this week (counted in the week it starts).
				Mine: []fablab.Interval{iv(local(2026, 6, 13, 10, 0), local(2026, 6, 13, 13, 0)), iv(local(2026, 6, 7, 10, 0), local(2026, 6, 7, 14, 0))},
			}},
			edit: func(q *SlotQuery) { q.Limit = 1; q.To = local(2026, 6, 20, 0, 0) },
			want: []Slot{sl(1, local(2026, 6, 15, 9, 0), local(2026, 6, 15, 21, 0))},
		},
		{
			name: "a missing training flags the machine",
			machines: []MachineCalendar{
				{Machine: slotMachine(1, func(m *fablab.Machine) { m.RequiredTrainings = []fablab.ID{3, laserSafety, 9} })},
			},
			edit: func(q *SlotQuery) { q.Limit = 1 },
			want: []Slot{sl(1, mon(9, 0), mon(21, 0), 3, 9)},
		},
		{
			name:     "a missing training leaves the machine out when asked",
			machines: []MachineCalendar{{Machine: slotMachine(1, func(m *fablab.Machine) { m.RequiredTrainings = []fablab.ID{3} })}, {Machine: slotMachine(2, nil), Occupied: busyMonday}},
			edit:     func(q *SlotQuery) { q.Limit, q.QualifiedOnly = 1, true },
			want:     []Slot{sl(2, mon(15, 0), mon(21, 0))},
		},
		{
			name:     "a qualification expiring mid-day splits the range where bookings would outlast it",
			machines: []MachineCalendar{{Machine: slotMachine(1, nil)}},
			edit: func(q *SlotQuery) {
				q.Limit, q.From = 2, tue(0, 0)
				q.Qualifications = []fablab.Qualification{{MemberID: 42, TrainingID: laserSafety, ExpiresAt: ptr(tue(12, 0))}}
			},
			// A qualification is valid before it expires: two-hour bookings
			// starting by 09:30 end before 12:00.
			want: []Slot{sl(1, tue(9, 0), tue(11, 30)), sl(1, tue(10, 0), tue(21, 0), laserSafety)},
		},
		{
			name: "spring DST change: the lab open 01:00–05:00 on Sunday is open 3 real hours",
			settings: func(s *fablab.Settings) {
				sundayNight(hm(1, 0), hm(5, 0))(s)
				s.OpeningHours.Saturday = nil
			},
			machines: []MachineCalendar{{Machine: slotMachine(1, func(m *fablab.Machine) { m.Rules.SlotMinutes, m.Rules.MinMinutes = 60, 60 })}},
			now:      local(2026, 3, 23, 8, 0),
			edit: func(q *SlotQuery) {
				q.From, q.To, q.Minutes, q.Limit = local(2026, 3, 28, 0, 0), local(2026, 3, 30, 0, 0), 60, 5
			},
			// 01:00 CET (00:00Z) to 05:00 CEST (03:00Z); starts 01:00, 03:00, 04:00.
			want: []Slot{sl(1, utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 3, 0))},
		},
		{
			name:     "autumn DST change: the repeated 02:00 is a start of its own",
			settings: sundayNight(hm(0, 0), hm(5, 0)),
			machines: []MachineCalendar{{
				Machine: slotMachine(1, func(m *fablab.Machine) { m.Rules.SlotMinutes, m.Rules.MinMinutes = 60, 60 }),
				// 00:00 CEST to the second 02:00 (CET).
				Occupied: []fablab.Interval{iv(utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 1, 0))},
			}},
			now: local(2026, 10, 19, 8, 0),
			edit: func(q *SlotQuery) {
				q.From, q.To, q.Minutes, q.Limit = local(2026, 10, 25, 0, 0), local(2026, 10, 26, 0, 0), 60, 5
			},
			// 02:00 CET (01:00Z) to 05:00 CET (04:00Z).
			want: []Slot{sl(1, utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 4, 0))},
		},
		{
			name: "machines that cannot take the request say why",
			machines: []MachineCalendar{
				{Machine: slotMachine(1, func(m *fablab.Machine) { m.State = fablab.MachineMaintenance })},
				{Machine: slotMachine(2, func(m *fablab.Machine) { m.State = fablab.MachineRetired })},
				{Machine: slotMachine(3, func(m *fablab.Machine) { m.Rules.MaxMinutes = 60 })},
				{Machine: slotMachine(4, func(m *fablab.Machine) { m.Rules.SlotMinutes, m.Rules.MinMinutes = 60, 180 })},
				{Machine: slotMachine(5, func(m *fablab.Machine) { m.Rules.SlotMinutes, m.Rules.MinMinutes, m.Rules.MaxMinutes = 90, 90, 180 })},
			},
			edit:    func(q *SlotQuery) { q.Limit = 1 },
			want:    []Slot{},
			refused: map[fablab.ID]string{1: fablab.CodeMachineUnavailable, 2: fablab.CodeMachineUnavailable, 3: fablab.CodeTooLong, 4: fablab.CodeTooShort, 5: fablab.CodeSlotGranularity},
		},
		{
			name:     "a suspended member gets nothing",
			machines: []MachineCalendar{{Machine: slotMachine(1, nil)}},
			edit: func(q *SlotQuery) {
				q.Member = &fablab.Member{ID: 42, Role: fablab.RoleMaker, Status: fablab.StatusSuspended}
			},
			want:    []Slot{},
			refused: map[fablab.ID]string{1: fablab.CodeMemberInactive},
		},
		{
			name:     "a membership ending mid-week ends the search",
			machines: []MachineCalendar{{Machine: slotMachine(1, nil)}},
			edit: func(q *SlotQuery) {
				q.Member = &fablab.Member{ID: 42, Role: fablab.RoleMaker, Status: fablab.StatusActive, MembershipUntil: ptr(tue(12, 0))}
			},
			want: []Slot{sl(1, mon(9, 0), mon(21, 0)), sl(1, tue(9, 0), tue(12, 0))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := labSettings(t, tt.settings)
			q := SlotQuery{Member: maker, Qualifications: quals, Minutes: 120, From: now, To: now.Add(7 * 24 * time.Hour), Limit: 3}
			if tt.edit != nil {
				tt.edit(&q)
			}
			at := tt.now
			if at.IsZero() {
				at = now
			}
			got, refused := FreeSlots(s, q, tt.machines, at)
			if !sameSlots(got, tt.want) {
				t.Errorf("slots:\ngot:%s\nwant:%s", fmtSlots(got), fmtSlots(tt.want))
			}
			if len(refused) != len(tt.refused) {
				t.Errorf("refused %v, want %v", refused, tt.refused)
			}
			for id, code := range tt.refused {
				if c := fablab.ErrorCode(refused[id]); c != code {
					t.Errorf("machine %d refused with %q (%v), want %q", id, c, refused[id], code)
				}
			}
			for _, sl := range got {
				if sl.Start.Location() != s.Location() || sl.End.Location() != s.Location() {
					t.Errorf("slot %v–%v is not in lab time", sl.Start, sl.End)
				}
			}
		})
	}
}

// TestFreeSlotsAgreeWithCheck compares the search with a brute force that
// asks Check (and the busy time) about every minute of the range: the ranges
// must be exactly the runs of accepted starts, broken only by refused starts
// on the slot grid (Check refuses off-grid minutes with slot_granularity).
func TestFreeSlotsAgreeWithCheck(t *testing.T) {
	maker, quals := slotMaker()
	cases := []struct {
		name     string
		settings func(s *fablab.Settings)
		m        *fablab.Machine
		occupied []fablab.Interval
		mine     []fablab.Interval
		from     time.Time
		minutes  int
		now      time.Time
	}{
		{
			name: "spring DST week, open around the clock on Sunday, 15-minute slots",
			settings: func(s *fablab.Settings) {
				s.OpeningHours.Sunday = rng(0, 24*60)
				s.Closures = []fablab.Closure{{From: fablab.Date{Year: 2026, Month: 3, Day: 25}, To: fablab.Date{Year: 2026, Month: 3, Day: 25}}}
			},
			m:        slotMachine(1, func(m *fablab.Machine) { m.Rules.SlotMinutes, m.Rules.MinMinutes = 15, 15 }),
			occupied: []fablab.Interval{iv(local(2026, 3, 23, 10, 0), local(2026, 3, 23, 17, 45)), iv(utc(2026, 3, 29, 0, 15), utc(2026, 3, 29, 0, 45))},
			from:     local(2026, 3, 23, 0, 0), minutes: 45, now: local(2026, 3, 22, 23, 0),
		},
		{
			name: "autumn DST week, open around the clock, hourly slots, a quota",
			settings: func(s *fablab.Settings) {
				s.OpeningHours.Sunday, s.OpeningHours.Saturday = rng(0, 24*60), rng(0, 24*60)
			},
			m: slotMachine(1, func(m *fablab.Machine) {
				m.Rules.SlotMinutes, m.Rules.MinMinutes, m.Rules.WeeklyQuotaMinutes = 60, 60, 600
				m.Maintenance = []fablab.MaintenanceBlock{maintenance(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0))}
			}),
			mine: []fablab.Interval{iv(local(2026, 10, 20, 9, 0), local(2026, 10, 20, 13, 0))},
			from: local(2026, 10, 19, 0, 0), minutes: 120, now: local(2026, 10, 18, 12, 0),
		},
		{
			name: "90-minute slots across the autumn change",
			settings: func(s *fablab.Settings) {
				s.OpeningHours.Sunday, s.OpeningHours.Saturday = rng(0, 24*60), rng(0, 24*60)
			},
			m:    slotMachine(1, func(m *fablab.Machine) { m.Rules.SlotMinutes, m.Rules.MinMinutes, m.Rules.MaxMinutes = 90, 90, 180 }),
			from: local(2026, 10, 24, 0, 0), minutes: 90, now: local(2026, 10, 23, 9, 0),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := labSettings(t, tc.settings)
			to := tc.from.Add(7 * 24 * time.Hour)
			length := time.Duration(tc.minutes) * time.Minute
			got, _ := FreeSlots(s, SlotQuery{Member: maker, Qualifications: quals, Minutes: tc.minutes, From: tc.from, To: to, Limit: 1000},
				[]MachineCalendar{{Machine: tc.m, Occupied: tc.occupied, Mine: tc.mine}}, tc.now)

			var want []Slot
			var run *Slot
			var last time.Time
			flush := func() {
				if run != nil {
					run.End = last.Add(length)
					want = append(want, *run)
					run = nil
				}
			}
			for st := tc.from; st.Before(to); st = st.Add(time.Minute) {
				end := st.Add(length)
				week := WeekOf(s, st)
				err := Check(s, Request{Start: st, End: end, Machine: tc.m, Member: maker, Qualifications: quals}, tc.now, minutesStarting(tc.mine, week))
				for _, o := range tc.occupied {
					if err == nil && o.Overlaps(iv(st, end)) {
						err = fablab.Errorf(fablab.CodeBookingConflict, "busy")
					}
				}
				switch {
				case err == nil:
					if run == nil {
						run = &Slot{MachineID: tc.m.ID, MachineName: tc.m.Name, Start: st}
					}
					last = st
				case fablab.ErrorCode(err) != fablab.CodeSlotGranularity:
					flush()
				}
			}
			flush()
			if len(want) == 0 {
				t.Fatal("the brute force found nothing: the case tests nothing")
			}
			if !sameSlots(got, want) {
				t.Errorf("search:%s\nbrute force:%s", fmtSlots(got), fmtSlots(want))
			}
		})
	}
}
