package booking

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

func machine(edit func(m *fablab.Machine)) *fablab.Machine {
	m := &fablab.Machine{
		ID: 1, Name: "Laser 1", Kind: fablab.KindLaserCutter, State: fablab.MachineAvailable,
		Rules: fablab.DefaultBookingRules(), RequiredTrainings: []fablab.ID{},
	}
	if edit != nil {
		edit(m)
	}
	return m
}

func maintenance(a, b time.Time) fablab.MaintenanceBlock {
	return fablab.MaintenanceBlock{Start: a, End: b, Reason: "new tube"}
}

func TestAvailability(t *testing.T) {
	// Monday 8 June 2026, open 09:00–21:00.
	at := func(h, m int) time.Time { return local(2026, 6, 8, h, m) }
	dayFrom, dayTo := at(0, 0), local(2026, 6, 9, 0, 0)
	tests := []struct {
		name      string
		edit      func(m *fablab.Machine)
		occupied  []fablab.Interval
		from, to  time.Time
		free      []fablab.Interval
		busy      []fablab.Interval
		wantEmpty bool
	}{
		{
			name: "no bookings: free is the opening hours",
			from: dayFrom, to: dayTo,
			free: []fablab.Interval{iv(at(9, 0), at(21, 0))},
		},
		{
			name:     "bookings and maintenance split free time",
			edit:     func(m *fablab.Machine) { m.Maintenance = []fablab.MaintenanceBlock{maintenance(at(18, 0), at(22, 0))} },
			occupied: []fablab.Interval{iv(at(15, 0), at(16, 0)), iv(at(10, 0), at(11, 0)), iv(at(11, 0), at(12, 0))},
			from:     dayFrom, to: dayTo,
			free: []fablab.Interval{iv(at(9, 0), at(10, 0)), iv(at(12, 0), at(15, 0)), iv(at(16, 0), at(18, 0))},
			busy: []fablab.Interval{iv(at(10, 0), at(12, 0)), iv(at(15, 0), at(16, 0)), iv(at(18, 0), at(22, 0))},
		},
		{
			name:     "overlapping bookings merge",
			occupied: []fablab.Interval{iv(at(10, 0), at(12, 0)), iv(at(11, 0), at(13, 0)), iv(at(11, 30), at(12, 0))},
			from:     dayFrom, to: dayTo,
			free: []fablab.Interval{iv(at(9, 0), at(10, 0)), iv(at(13, 0), at(21, 0))},
			busy: []fablab.Interval{iv(at(10, 0), at(13, 0))},
		},
		{
			name: "busy is clipped to the window",
			edit: func(m *fablab.Machine) {
				m.Maintenance = []fablab.MaintenanceBlock{maintenance(at(13, 30), local(2026, 6, 10, 0, 0))}
			},
			occupied: []fablab.Interval{iv(at(11, 0), at(13, 0))},
			from:     at(12, 0), to: at(14, 0),
			free: []fablab.Interval{iv(at(13, 0), at(13, 30))},
			busy: []fablab.Interval{iv(at(12, 0), at(13, 0)), iv(at(13, 30), at(14, 0))},
		},
		{
			name:     "busy outside opening hours is still reported",
			occupied: []fablab.Interval{iv(at(22, 0), at(23, 0))},
			from:     dayFrom, to: dayTo,
			free: []fablab.Interval{iv(at(9, 0), at(21, 0))},
			busy: []fablab.Interval{iv(at(22, 0), at(23, 0))},
		},
		{
			name:     "busy entirely outside the window is dropped",
			occupied: []fablab.Interval{iv(local(2026, 6, 7, 10, 0), dayFrom), iv(dayTo, local(2026, 6, 9, 10, 0))},
			from:     dayFrom, to: dayTo,
			free: []fablab.Interval{iv(at(9, 0), at(21, 0))},
		},
		{
			name:     "empty and inverted intervals are ignored",
			occupied: []fablab.Interval{iv(at(10, 0), at(10, 0)), iv(at(12, 0), at(11, 0))},
			from:     dayFrom, to: dayTo,
			free: []fablab.Interval{iv(at(9, 0), at(21, 0))},
		},
		{
			name:     "free slots shorter than the minimum are kept",
			edit:     func(m *fablab.Machine) { m.Rules.MinMinutes = 60 },
			occupied: []fablab.Interval{iv(at(9, 30), at(20, 50))},
			from:     dayFrom, to: dayTo,
			free: []fablab.Interval{iv(at(9, 0), at(9, 30)), iv(at(20, 50), at(21, 0))},
			busy: []fablab.Interval{iv(at(9, 30), at(20, 50))},
		},
		{
			name:     "machine in maintenance has no free time but keeps its busy time",
			edit:     func(m *fablab.Machine) { m.State = fablab.MachineMaintenance },
			occupied: []fablab.Interval{iv(at(10, 0), at(11, 0))},
			from:     dayFrom, to: dayTo,
			busy: []fablab.Interval{iv(at(10, 0), at(11, 0))},
		},
		{
			name: "retired machine has no free time",
			edit: func(m *fablab.Machine) { m.State = fablab.MachineRetired },
			from: dayFrom, to: dayTo,
		},
		{
			name:     "empty window",
			occupied: []fablab.Interval{iv(at(10, 0), at(11, 0))},
			from:     at(10, 30), to: at(10, 30),
		},
	}
	s := labSettings(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			free, busy := Availability(s, machine(tt.edit), tt.occupied, tt.from, tt.to)
			assertIntervals(t, "free", free, tt.free)
			assertIntervals(t, "busy", busy, tt.busy)
			// The HTTP layer encodes them as is: [] not null.
			b, err := json.Marshal(map[string]any{"free": free, "busy": busy})
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.free) == 0 && len(tt.busy) == 0 && string(b) != `{"busy":[],"free":[]}` {
				t.Errorf("JSON = %s, want empty arrays", b)
			}
		})
	}
}

// TestAvailabilityDSTWeek checks a whole week across each DST change, with the
// default hours plus Sunday 01:00–04:00 (the hours around the change).
func TestAvailabilityDSTWeek(t *testing.T) {
	s := labSettings(t, func(s *fablab.Settings) { s.OpeningHours.Sunday = rng(hm(1, 0), hm(4, 0)) })
	tests := []struct {
		name        string
		week        time.Time // an instant in the week
		maintenance []fablab.MaintenanceBlock
		occupied    []fablab.Interval
		free, busy  []fablab.Interval
		freeTotal   time.Duration
	}{
		{
			name:        "March: the Sunday loses an hour",
			week:        local(2026, 3, 25, 12, 0),
			maintenance: []fablab.MaintenanceBlock{maintenance(local(2026, 3, 24, 9, 0), local(2026, 3, 24, 12, 0))},
			occupied: []fablab.Interval{
				iv(local(2026, 3, 28, 17, 0), local(2026, 3, 28, 19, 0)),
				// 01:30 CET – 03:30 CEST: one real hour across the change.
				iv(utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30)),
			},
			free: []fablab.Interval{
				iv(local(2026, 3, 23, 9, 0), local(2026, 3, 23, 21, 0)),
				iv(local(2026, 3, 24, 12, 0), local(2026, 3, 24, 21, 0)),
				iv(local(2026, 3, 25, 9, 0), local(2026, 3, 25, 21, 0)),
				iv(local(2026, 3, 26, 9, 0), local(2026, 3, 26, 21, 0)),
				iv(local(2026, 3, 27, 9, 0), local(2026, 3, 27, 21, 0)),
				iv(local(2026, 3, 28, 10, 0), local(2026, 3, 28, 17, 0)),
				iv(utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 0, 30)), // 01:00–01:30 CET
				iv(utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 0)), // 03:30–04:00 CEST
			},
			busy: []fablab.Interval{
				iv(local(2026, 3, 24, 9, 0), local(2026, 3, 24, 12, 0)),
				iv(local(2026, 3, 28, 17, 0), local(2026, 3, 28, 19, 0)),
				iv(utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30)),
			},
			freeTotal: (12*5-3+7)*time.Hour + time.Hour,
		},
		{
			name: "October: the Sunday gains an hour",
			week: local(2026, 10, 21, 12, 0),
			occupied: []fablab.Interval{
				// 02:30 CEST – 02:30 CET: the first 02:30 to the second.
				iv(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),
				// Monday of the next week: outside the window.
				iv(local(2026, 10, 26, 9, 0), local(2026, 10, 26, 10, 0)),
			},
			free: []fablab.Interval{
				iv(local(2026, 10, 19, 9, 0), local(2026, 10, 19, 21, 0)),
				iv(local(2026, 10, 20, 9, 0), local(2026, 10, 20, 21, 0)),
				iv(local(2026, 10, 21, 9, 0), local(2026, 10, 21, 21, 0)),
				iv(local(2026, 10, 22, 9, 0), local(2026, 10, 22, 21, 0)),
				iv(local(2026, 10, 23, 9, 0), local(2026, 10, 23, 21, 0)),
				iv(local(2026, 10, 24, 10, 0), local(2026, 10, 24, 18, 0)),
				iv(utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 0, 30)), // 01:00–02:30 CEST
				iv(utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 3, 0)),  // 02:30–04:00 CET
			},
			busy: []fablab.Interval{
				iv(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),
			},
			freeTotal: (12*5+8)*time.Hour + 3*time.Hour,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := machine(func(m *fablab.Machine) { m.Maintenance = tt.maintenance })
			week := WeekOf(s, tt.week)
			free, busy := Availability(s, m, tt.occupied, week.Start, week.End)
			assertIntervals(t, "free", free, tt.free)
			assertIntervals(t, "busy", busy, tt.busy)
			if total(free) != tt.freeTotal {
				t.Errorf("free time totals %s, want %s", total(free), tt.freeTotal)
			}
		})
	}
}
