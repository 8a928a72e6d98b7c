package bolt_test

import (
	"crypto/sha256"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

func TestCreateMachine(t *testing.T) {
	custom := fablab.BookingRules{SlotMinutes: 15, MinMinutes: 15, MaxMinutes: 120, MaxAheadDays: 7}
	tests := []struct {
		name string
		// machine builds the machine from the ids of two existing trainings.
		machine   func(laser, cnc fablab.ID) fablab.Machine
		code      string
		wantRules fablab.BookingRules // checked when code is ""
	}{
		{
			name:      "zero rules take the lab defaults",
			machine:   func(laser, _ fablab.ID) fablab.Machine { return fablab.Machine{RequiredTrainings: []fablab.ID{laser}} },
			wantRules: fablab.DefaultBookingRules(),
		},
		{
			name:      "explicit rules are kept",
			machine:   func(_, _ fablab.ID) fablab.Machine { return fablab.Machine{Rules: custom} },
			wantRules: custom,
		},
		{
			name: "two existing trainings",
			machine: func(laser, cnc fablab.ID) fablab.Machine {
				return fablab.Machine{RequiredTrainings: []fablab.ID{laser, cnc}}
			},
			wantRules: fablab.DefaultBookingRules(),
		},
		{
			name: "missing training",
			machine: func(laser, cnc fablab.ID) fablab.Machine {
				return fablab.Machine{RequiredTrainings: []fablab.ID{laser, cnc + 10}}
			},
			code: fablab.ENOTFOUND,
		},
		{
			name:    "invalid explicit rules",
			machine: func(_, _ fablab.ID) fablab.Machine { return fablab.Machine{Rules: fablab.BookingRules{SlotMinutes: 7}} },
			code:    fablab.EINVALID,
		},
		{
			name:    "price for an unknown group",
			machine: func(_, _ fablab.ID) fablab.Machine { return fablab.Machine{Prices: map[string]int64{"vip": 100}} },
			code:    fablab.EINVALID,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clock := newStore(t)
			laser, cnc := mustTraining(t, s, "Laser safety"), mustTraining(t, s, "CNC basics")
			m := tt.machine(laser.ID, cnc.ID)
			m.Name, m.Kind = "Trotec Speedy 300", fablab.KindLaserCutter
			got, err := s.CreateMachine(t.Context(), m)
			wantCode(t, err, tt.code)
			if err != nil {
				if p, _ := s.Machines(t.Context(), 0, 10); len(p.Items) != 0 {
					t.Errorf("refused machine was stored: %+v", p.Items)
				}
				return
			}
			stored, err := s.Machine(t.Context(), got.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Rules != tt.wantRules {
				t.Errorf("rules = %+v, want %+v", stored.Rules, tt.wantRules)
			}
			if stored.State != fablab.MachineAvailable || !stored.CreatedAt.Equal(clock.Now()) || !slices.Equal(stored.RequiredTrainings, m.RequiredTrainings) {
				t.Errorf("stored machine = %+v", stored)
			}
		})
	}
}

func TestCreateMachineFollowsChangedDefaults(t *testing.T) {
	s, _ := newStore(t)
	rules := fablab.DefaultBookingRules()
	rules.SlotMinutes, rules.MinMinutes = 60, 60
	if _, err := s.UpdateSettings(t.Context(), func(st *fablab.Settings) error { st.DefaultRules = rules; return nil }); err != nil {
		t.Fatal(err)
	}
	if m := mustMachine(t, s, "Ultimaker"); m.Rules != rules {
		t.Errorf("rules = %+v, want the changed defaults %+v", m.Rules, rules)
	}
}

func TestUpdateMachine(t *testing.T) {
	s, _ := newStore(t)
	laser := mustTraining(t, s, "Laser safety")
	m := mustMachine(t, s, "Laser")
	tests := []struct {
		name string
		fn   func(*fablab.Machine) error
		code string
	}{
		{name: "maintenance", fn: func(m *fablab.Machine) error { m.State = fablab.MachineMaintenance; return nil }},
		{name: "add existing training", fn: func(m *fablab.Machine) error { m.RequiredTrainings = []fablab.ID{laser.ID}; return nil }},
		{name: "add missing training", fn: func(m *fablab.Machine) error { m.RequiredTrainings = []fablab.ID{laser.ID + 1}; return nil }, code: fablab.ENOTFOUND},
		{name: "bad state", fn: func(m *fablab.Machine) error { m.State = "broken"; return nil }, code: fablab.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := s.Machine(t.Context(), m.ID)
			got, err := s.UpdateMachine(t.Context(), m.ID, tt.fn)
			wantCode(t, err, tt.code)
			after, _ := s.Machine(t.Context(), m.ID)
			if err != nil && !reflect.DeepEqual(before, after) {
				t.Errorf("refused update changed the machine: %+v → %+v", before, after)
			}
			if err == nil && !reflect.DeepEqual(got, after) {
				t.Errorf("returned %+v, stored %+v", got, after)
			}
		})
	}
	got, _ := s.Machine(t.Context(), m.ID)
	if got.State != fablab.MachineMaintenance || !slices.Equal(got.RequiredTrainings, []fablab.ID{laser.ID}) {
		t.Errorf("machine after updates = %+v", got)
	}
}

func TestPutTariffGroups(t *testing.T) {
	defaults := fablab.DefaultTariffGroups()
	with := func(extra ...fablab.TariffGroup) []fablab.TariffGroup {
		return append(slices.Clone(defaults), extra...)
	}
	renamed := slices.Clone(defaults)
	renamed[0].Name = "Students"
	tests := []struct {
		name string
		gs   []fablab.TariffGroup
		code string
	}{
		{name: "add a group", gs: with(fablab.TariffGroup{ID: "school", Name: "Scolaire"})},
		{name: "rename a group", gs: renamed},
		{name: "same groups", gs: defaults},
		{name: "remove a group", gs: defaults[1:], code: fablab.EINVALID},
		{name: "replace everything", gs: []fablab.TariffGroup{{ID: "all", Name: "All"}}, code: fablab.EINVALID},
		{name: "empty", gs: nil, code: fablab.EINVALID},
		{name: "bad id", gs: with(fablab.TariffGroup{ID: "Big Corp", Name: "x"}), code: fablab.EINVALID},
		{name: "duplicate", gs: with(defaults[0]), code: fablab.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			_, err := s.PutTariffGroups(t.Context(), tt.gs)
			wantCode(t, err, tt.code)
			want := tt.gs
			if tt.code != "" {
				want = defaults
			}
			got, err := s.TariffGroups(t.Context())
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("stored groups = %v, %v; want %v", got, err, want)
			}
		})
	}
	t.Run("a new group can be used", func(t *testing.T) {
		s, _ := newStore(t)
		if _, err := s.PutTariffGroups(t.Context(), with(fablab.TariffGroup{ID: "school", Name: "Scolaire"})); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateMember(t.Context(), fablab.Member{Email: "p@lycee.example", Name: "Pupil", Group: "school"}); err != nil {
			t.Errorf("member in the new group: %v", err)
		}
	})
}

func TestUpdateSettings(t *testing.T) {
	tests := []struct {
		name     string
		fn       func(*fablab.Settings) error
		code     string
		wantZone string
	}{
		{name: "valid zone", fn: func(st *fablab.Settings) error { st.TimeZone = "America/Montreal"; return nil }, wantZone: "America/Montreal"},
		{name: "bad zone", fn: func(st *fablab.Settings) error { st.TimeZone = "Mars/Olympus_Mons"; return nil }, code: fablab.EINVALID},
		{name: "Local is refused", fn: func(st *fablab.Settings) error { st.TimeZone = "Local"; return nil }, code: fablab.EINVALID},
		{name: "bad zone with other valid changes", fn: func(st *fablab.Settings) error {
			st.Name, st.TimeZone = "Renamed", "Europe/Pariss"
			return nil
		}, code: fablab.EINVALID},
		{name: "bad currency", fn: func(st *fablab.Settings) error { st.Currency = "euro"; return nil }, code: fablab.EINVALID},
		{name: "overlapping opening hours", fn: func(st *fablab.Settings) error {
			st.OpeningHours.Sunday = []fablab.TimeRange{{Open: 600, Close: 720}, {Open: 700, Close: 800}}
			return nil
		}, code: fablab.EINVALID},
		{name: "fn error", fn: func(st *fablab.Settings) error {
			st.TimeZone = "UTC"
			return fablab.Errorf(fablab.EFORBIDDEN, "no")
		}, code: fablab.EFORBIDDEN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			got, err := s.UpdateSettings(t.Context(), tt.fn)
			wantCode(t, err, tt.code)
			stored, serr := s.Settings(t.Context())
			if serr != nil {
				t.Fatal(serr)
			}
			if tt.code != "" {
				def := fablab.DefaultSettings()
				if stored.TimeZone != def.TimeZone || stored.Name != def.Name || stored.Currency != def.Currency || len(stored.OpeningHours.Sunday) != 0 {
					t.Errorf("refused update stored %+v", stored)
				}
				return
			}
			if stored.TimeZone != tt.wantZone || got.TimeZone != tt.wantZone || stored.Location().String() != tt.wantZone {
				t.Errorf("time zone: returned %q, stored %q (%v), want %q", got.TimeZone, stored.TimeZone, stored.Location(), tt.wantZone)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	s, clock := newStore(t)
	ctx := t.Context()
	ada := mustMember(t, s, "Ada")
	key := sha256.Sum256([]byte("raw-token"))
	issued := clock.Now()
	if err := s.PutToken(ctx, key, bolt.Token{MemberID: ada.ID, CSRF: "c", CreatedAt: issued, ExpiresAt: issued.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Time
		key  [32]byte
		code string
	}{
		{name: "fresh", at: issued, key: key},
		{name: "one second before expiry", at: issued.Add(time.Hour - time.Second), key: key},
		{name: "at expiry", at: issued.Add(time.Hour), key: key, code: fablab.EUNAUTHORIZED},
		{name: "long after", at: issued.Add(30 * 24 * time.Hour), key: key, code: fablab.EUNAUTHORIZED},
		{name: "unknown key", at: issued, key: sha256.Sum256([]byte("other")), code: fablab.EUNAUTHORIZED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Set(tt.at)
			tok, err := s.TokenByKey(ctx, tt.key)
			wantCode(t, err, tt.code)
			if err == nil && (tok.MemberID != ada.ID || tok.CSRF != "c") {
				t.Errorf("token = %+v", tok)
			}
		})
	}
	clock.Set(issued)
	if err := s.DeleteToken(ctx, key); err != nil {
		t.Fatal(err)
	}
	_, err := s.TokenByKey(ctx, key)
	wantCode(t, err, fablab.EUNAUTHORIZED)
	if err := s.DeleteToken(ctx, key); err != nil {
		t.Errorf("deleting an absent token: %v", err)
	}
}

// A maintenance block may not be laid over bookings that hold their slot.
func TestUpdateMachineMaintenanceOverBookings(t *testing.T) {
	s, _ := newStore(t)
	m := mustMachine(t, s, "Laser")
	ada := mustMember(t, s, "Ada")
	b, err := book(t, s, m.ID, ada.ID, fablab.Interval{Start: at(60), End: at(120)})
	if err != nil {
		t.Fatal(err)
	}
	block := func(from, to int) fablab.MaintenanceBlock {
		return fablab.MaintenanceBlock{Start: at(from), End: at(to), Reason: "laser tube"}
	}
	setBlocks := func(bs ...fablab.MaintenanceBlock) error {
		_, err := s.UpdateMachine(t.Context(), m.ID, func(m *fablab.Machine) error { m.Maintenance = bs; return nil })
		return err
	}
	tests := []struct {
		name   string
		blocks []fablab.MaintenanceBlock
		code   string
	}{
		{"before the booking, touching it", []fablab.MaintenanceBlock{block(0, 60)}, ""},
		{"kept as it is, plus one after the booking", []fablab.MaintenanceBlock{block(0, 60), block(120, 180)}, ""},
		{"over the booking", []fablab.MaintenanceBlock{block(0, 60), block(90, 100)}, fablab.CodeBookingConflict},
		{"an existing block moved over the booking", []fablab.MaintenanceBlock{block(0, 61)}, fablab.CodeBookingConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := s.Machine(t.Context(), m.ID)
			err := setBlocks(tt.blocks...)
			wantCode(t, err, tt.code)
			if err != nil && !strings.Contains(err.Error(), b.ID.String()) {
				t.Errorf("the refusal %q does not name booking %s", err, b.ID)
			}
			after, _ := s.Machine(t.Context(), m.ID)
			if err != nil && !reflect.DeepEqual(before, after) {
				t.Errorf("a refused update changed the machine")
			}
		})
	}
	// Once the booking is cancelled, the block fits.
	if _, err := s.SetBookingState(t.Context(), b.ID, fablab.BookingCancelled, ada.ID, func(fablab.Machine, fablab.Booking) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := setBlocks(block(0, 180)); err != nil {
		t.Fatalf("block over a cancelled booking: %v", err)
	}
}
