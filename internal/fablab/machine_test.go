package fablab

import (
	"strings"
	"testing"
	"time"
)

func validMachine() Machine {
	return Machine{
		Name:              "  Laser Trotec  ",
		Kind:              KindLaserCutter,
		DeviceID:          "laser-1",
		Rules:             DefaultBookingRules(),
		Prices:            map[string]int64{"student": 500, "sme": 3000},
		RequiredTrainings: []ID{1, 2},
	}
}

func TestMachineValidate(t *testing.T) {
	groups := DefaultTariffGroups()
	start := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		edit    func(*Machine)
		wantErr string
		check   func(*testing.T, *Machine)
	}{
		{"valid, defaults filled", func(m *Machine) {}, "", func(t *testing.T, m *Machine) {
			if m.Name != "Laser Trotec" || m.State != MachineAvailable || m.Maintenance == nil {
				t.Errorf("name %q state %q maintenance %v", m.Name, m.State, m.Maintenance)
			}
		}},
		{"nil prices and trainings become empty", func(m *Machine) { m.Prices, m.RequiredTrainings = nil, nil }, "", func(t *testing.T, m *Machine) {
			if m.Prices == nil || m.RequiredTrainings == nil {
				t.Errorf("prices %v trainings %v still nil", m.Prices, m.RequiredTrainings)
			}
		}},
		{"other kind slug", func(m *Machine) { m.Kind = "vinyl-cutter-2" }, "", nil},
		{"no device", func(m *Machine) { m.DeviceID = "" }, "", nil},
		{"device id of 32", func(m *Machine) { m.DeviceID = strings.Repeat("d", 32) }, "", nil},
		{"maintenance state", func(m *Machine) { m.State = MachineMaintenance }, "", nil},
		{"retired state", func(m *Machine) { m.State = MachineRetired }, "", nil},
		{"free price", func(m *Machine) { m.Prices["staff"] = 0 }, "", nil},
		{"max price", func(m *Machine) { m.Prices["sme"] = 10_000_000 }, "", nil},
		{"grace 240", func(m *Machine) { m.GraceMinutes = 240 }, "", nil},
		{"100 maintenance blocks", func(m *Machine) { m.Maintenance = blocks(start, 100) }, "", nil},
		{"empty name", func(m *Machine) { m.Name = " " }, "name", nil},
		{"name too long", func(m *Machine) { m.Name = strings.Repeat("n", 201) }, "name", nil},
		{"empty kind", func(m *Machine) { m.Kind = "" }, "kind", nil},
		{"upper-case kind", func(m *Machine) { m.Kind = "CNC" }, "kind", nil},
		{"kind with space", func(m *Machine) { m.Kind = "laser cutter" }, "kind", nil},
		{"kind of 33", func(m *Machine) { m.Kind = strings.Repeat("k", 33) }, "kind", nil},
		{"description too long", func(m *Machine) { m.Description = strings.Repeat("d", 4001) }, "description", nil},
		{"device id upper case", func(m *Machine) { m.DeviceID = "Laser-1" }, "device_id", nil},
		{"device id with slash", func(m *Machine) { m.DeviceID = "laser/1" }, "device_id", nil},
		{"device id MQTT wildcard", func(m *Machine) { m.DeviceID = "laser+" }, "device_id", nil},
		{"device id of 33", func(m *Machine) { m.DeviceID = strings.Repeat("d", 33) }, "device_id", nil},
		{"device id with trailing newline", func(m *Machine) { m.DeviceID = "laser-1\n" }, "device_id", nil},
		{"unknown state", func(m *Machine) { m.State = "broken" }, "state", nil},
		{"bad rules", func(m *Machine) { m.Rules.MaxAheadDays = 0 }, "rules.max_ahead_days", nil},
		{"price for unknown group", func(m *Machine) { m.Prices["vip"] = 100 }, `prices: "vip" is not a tariff group`, nil},
		{"negative price", func(m *Machine) { m.Prices["student"] = -1 }, "prices[student]", nil},
		{"price too high", func(m *Machine) { m.Prices["sme"] = 10_000_001 }, "prices[sme]", nil},
		{"negative minimum charge", func(m *Machine) { m.MinimumChargeCents = -1 }, "minimum charge", nil},
		{"negative no-show fee", func(m *Machine) { m.NoShowFeeCents = -1 }, "no-show fee", nil},
		{"negative grace", func(m *Machine) { m.GraceMinutes = -1 }, "grace", nil},
		{"grace 241", func(m *Machine) { m.GraceMinutes = 241 }, "grace", nil},
		{"negative idle power", func(m *Machine) { m.IdlePowerW = -0.5 }, "idle power", nil},
		{"duplicate training", func(m *Machine) { m.RequiredTrainings = []ID{3, 1, 3} }, "required_trainings lists training 3 twice", nil},
		{"maintenance reversed", func(m *Machine) {
			m.Maintenance = []MaintenanceBlock{{Start: start.Add(time.Hour), End: start}}
		}, "maintenance block must end after it starts", nil},
		{"maintenance empty", func(m *Machine) {
			m.Maintenance = []MaintenanceBlock{{Start: start, End: start}}
		}, "maintenance block must end after it starts", nil},
		{"maintenance zero times", func(m *Machine) { m.Maintenance = []MaintenanceBlock{{}} }, "maintenance block must end after it starts", nil},
		{"101 maintenance blocks", func(m *Machine) { m.Maintenance = blocks(start, 101) }, "at most 100 maintenance blocks", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validMachine()
			tt.edit(&m)
			checkErr(t, m.Validate(groups), tt.wantErr)
			if tt.check != nil {
				tt.check(t, &m)
			}
		})
	}
}

func blocks(start time.Time, n int) []MaintenanceBlock {
	bs := make([]MaintenanceBlock, n)
	for i := range bs {
		s := start.Add(time.Duration(i) * 24 * time.Hour)
		bs[i] = MaintenanceBlock{Start: s, End: s.Add(time.Hour)}
	}
	return bs
}

func TestValidDeviceID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"a", true}, {"laser-1", true}, {"0-9", true}, {strings.Repeat("x", 32), true},
		{"", false}, {strings.Repeat("x", 33), false}, {"Laser", false}, {"laser_1", false},
		{"laser 1", false}, {"laser#", false}, {"lasér", false}, {"laser\n", false}, {"\nlaser", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ValidDeviceID(tt.in); got != tt.want {
				t.Errorf("ValidDeviceID(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestBookingOccupies(t *testing.T) {
	tests := []struct {
		state string
		want  bool
	}{
		{BookingConfirmed, true},
		{BookingCompleted, true},
		{BookingCancelled, false},
		{BookingNoShow, false},
		{"", false},
		{"pending", false},
		{"Confirmed", false},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			b := Booking{State: tt.state}
			if got := b.Occupies(); got != tt.want {
				t.Errorf("Occupies() with state %q = %v, want %v", tt.state, got, tt.want)
			}
		})
	}
}

func TestBookingInterval(t *testing.T) {
	s := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	b := Booking{Start: s, End: s.Add(90 * time.Minute)}
	iv := b.Interval()
	if !iv.Start.Equal(b.Start) || !iv.End.Equal(b.End) || iv.Duration() != 90*time.Minute {
		t.Errorf("Interval() = %+v", iv)
	}
}
