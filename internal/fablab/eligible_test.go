package fablab

import (
	"testing"
	"time"
)

func TestEligible(t *testing.T) {
	now := time.Date(2026, 3, 3, 14, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	day := 24 * time.Hour
	tests := []struct {
		name  string
		edit  func(m *Member, mc *Machine, qs *[]Qualification)
		want  Eligibility
		check time.Time // zero: t is now
	}{
		{"trained maker, nothing expires", nil, Eligibility{OK: true}, time.Time{}},
		{"no training required", func(m *Member, mc *Machine, qs *[]Qualification) { mc.RequiredTrainings, *qs = nil, nil },
			Eligibility{OK: true}, time.Time{}},
		{"suspended", func(m *Member, mc *Machine, qs *[]Qualification) { m.Status = StatusSuspended },
			Eligibility{Reason: IneligibleInactive}, time.Time{}},
		{"membership ended", func(m *Member, mc *Machine, qs *[]Qualification) { m.MembershipUntil = at(-time.Second) },
			Eligibility{Reason: IneligibleInactive}, time.Time{}},
		{"membership ends exactly now", func(m *Member, mc *Machine, qs *[]Qualification) { m.MembershipUntil = at(0) },
			Eligibility{Reason: IneligibleInactive}, time.Time{}},
		{"inactive is checked before the machine", func(m *Member, mc *Machine, qs *[]Qualification) {
			m.Status, mc.State = StatusSuspended, MachineRetired
		}, Eligibility{Reason: IneligibleInactive}, time.Time{}},
		{"maintenance, maker", func(m *Member, mc *Machine, qs *[]Qualification) { mc.State = MachineMaintenance },
			Eligibility{Reason: IneligibleUnavailable}, time.Time{}},
		{"maintenance, staff override", func(m *Member, mc *Machine, qs *[]Qualification) {
			mc.State, m.Role = MachineMaintenance, RoleStaff
		}, Eligibility{OK: true, Staff: true, Override: true}, time.Time{}},
		{"retired, even for admins", func(m *Member, mc *Machine, qs *[]Qualification) {
			mc.State, m.Role = MachineRetired, RoleAdmin
		}, Eligibility{Reason: IneligibleUnavailable, Staff: true}, time.Time{}},
		{"machine is checked before training", func(m *Member, mc *Machine, qs *[]Qualification) {
			mc.State, *qs = MachineMaintenance, nil
		}, Eligibility{Reason: IneligibleUnavailable}, time.Time{}},
		{"training missing", func(m *Member, mc *Machine, qs *[]Qualification) { *qs = (*qs)[1:] },
			Eligibility{Reason: IneligibleTraining, Missing: 1}, time.Time{}},
		{"staff need the training too", func(m *Member, mc *Machine, qs *[]Qualification) { m.Role, *qs = RoleAdmin, nil },
			Eligibility{Reason: IneligibleTraining, Missing: 1, Staff: true}, time.Time{}},
		{"second training missing", func(m *Member, mc *Machine, qs *[]Qualification) { *qs = (*qs)[:1] },
			Eligibility{Reason: IneligibleTraining, Missing: 2}, time.Time{}},
		{"qualification expired", func(m *Member, mc *Machine, qs *[]Qualification) { (*qs)[0].ExpiresAt = at(-time.Second) },
			Eligibility{Reason: IneligibleTraining, Missing: 1}, time.Time{}},
		{"qualification expiring exactly now", func(m *Member, mc *Machine, qs *[]Qualification) { (*qs)[0].ExpiresAt = at(0) },
			Eligibility{Reason: IneligibleTraining, Missing: 1}, time.Time{}},
		{"another member's qualification does not count", func(m *Member, mc *Machine, qs *[]Qualification) { (*qs)[0].MemberID = 8 },
			Eligibility{Reason: IneligibleTraining, Missing: 1}, time.Time{}},
		{"a qualification naming no member counts", func(m *Member, mc *Machine, qs *[]Qualification) { (*qs)[0].MemberID = 0 },
			Eligibility{OK: true}, time.Time{}},
		{"until: the first qualification to expire", func(m *Member, mc *Machine, qs *[]Qualification) {
			(*qs)[0].ExpiresAt, (*qs)[1].ExpiresAt = at(10*day), at(5*day)
		}, Eligibility{OK: true, Until: now.Add(5 * day)}, time.Time{}},
		{"until: the membership's end when earlier", func(m *Member, mc *Machine, qs *[]Qualification) {
			(*qs)[0].ExpiresAt, m.MembershipUntil = at(10*day), at(3*day)
		}, Eligibility{OK: true, Until: now.Add(3 * day)}, time.Time{}},
		{"until: the best of two qualifications for one training", func(m *Member, mc *Machine, qs *[]Qualification) {
			(*qs)[0].ExpiresAt = at(2 * day)
			*qs = append(*qs, Qualification{MemberID: 7, TrainingID: 1, ExpiresAt: at(20 * day)}, Qualification{MemberID: 7, TrainingID: 1, ExpiresAt: at(-day)})
		}, Eligibility{OK: true, Until: now.Add(20 * day)}, time.Time{}},
		{"checked at another instant (a booking's end)", func(m *Member, mc *Machine, qs *[]Qualification) { (*qs)[0].ExpiresAt = at(time.Hour) },
			Eligibility{Reason: IneligibleTraining, Missing: 1}, now.Add(2 * time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Member{ID: 7, Role: RoleMaker, Status: StatusActive}
			mc := Machine{ID: 3, State: MachineAvailable, RequiredTrainings: []ID{1, 2}}
			qs := []Qualification{{MemberID: 7, TrainingID: 1}, {MemberID: 7, TrainingID: 2}}
			if tc.edit != nil {
				tc.edit(&m, &mc, &qs)
			}
			when := now
			if !tc.check.IsZero() {
				when = tc.check
			}
			got := Eligible(&m, &mc, qs, when)
			if got != tc.want {
				t.Errorf("Eligible = %+v, want %+v", got, tc.want)
			}
			until, missing, ok := Qualified(&mc, m.ID, qs, when)
			wantOK := tc.want.Reason != IneligibleTraining
			if tc.want.Reason == "" || tc.want.Reason == IneligibleTraining {
				if ok != wantOK || missing != tc.want.Missing {
					t.Errorf("Qualified = %v, %v, %v; want ok %v missing %v", until, missing, ok, wantOK, tc.want.Missing)
				}
			}
		})
	}
}

func TestMissingTrainings(t *testing.T) {
	now := time.Date(2026, 3, 3, 14, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	mc := &Machine{RequiredTrainings: []ID{3, 7, 9}}
	quals := []Qualification{
		{MemberID: 42, TrainingID: 7},                    // never expires
		{MemberID: 42, TrainingID: 9, ExpiresAt: &later}, // valid until later
		{MemberID: 43, TrainingID: 3},                    // someone else's
		{MemberID: 42, TrainingID: 3, ExpiresAt: &now},   // expired at now
	}
	tests := []struct {
		name string
		at   time.Time
		want []ID
	}{
		{"before the expiries", now.Add(-time.Minute), nil},
		{"at an expiry: no longer valid", now, []ID{3}},
		{"after both expiries, in the machine's order", later, []ID{3, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MissingTrainings(mc, 42, quals, tt.at)
			if len(got) != len(tt.want) {
				t.Fatalf("missing %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("missing %v, want %v", got, tt.want)
				}
			}
			// The one rule: Qualified agrees on the first missing one.
			_, first, ok := Qualified(mc, 42, quals, tt.at)
			if ok != (len(got) == 0) || !ok && first != got[0] {
				t.Errorf("Qualified says ok=%v first=%d; MissingTrainings %v", ok, first, got)
			}
		})
	}
}
