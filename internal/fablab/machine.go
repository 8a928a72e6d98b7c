package fablab

import (
	"regexp"
	"strings"
	"time"
)

// Machine states.
const (
	MachineAvailable   = "available"
	MachineMaintenance = "maintenance"
	MachineRetired     = "retired"
)

// Well-known machine kinds; others matching [a-z0-9-]{1,32} are accepted.
const (
	Kind3DPrinter   = "3d-printer"
	KindLaserCutter = "laser-cutter"
	KindCNC         = "cnc"
)

// maxFeeCents bounds one-off amounts (minimum charge, no-show fee).
const maxFeeCents = 100_000_00

var deviceIDPattern = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// ValidDeviceID reports whether s is a valid device id ([a-z0-9-]{1,32}).
func ValidDeviceID(s string) bool { return deviceIDPattern.MatchString(s) }

// MaintenanceBlock is a planned span when a machine cannot be booked.
type MaintenanceBlock struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Reason string    `json:"reason,omitempty"`
}

// Machine is a bookable, access-controlled machine.
type Machine struct {
	ID                 ID                 `json:"id"`
	Name               string             `json:"name"`
	Kind               string             `json:"kind"`
	Description        string             `json:"description,omitempty"`
	RequiredTrainings  []ID               `json:"required_trainings"`
	DeviceID           string             `json:"device_id,omitempty"`
	State              string             `json:"state"`
	Rules              BookingRules       `json:"rules"`
	Prices             map[string]int64   `json:"prices"` // cents per hour by tariff group
	MinimumChargeCents int64              `json:"minimum_charge_cents"`
	NoShowFeeCents     int64              `json:"no_show_fee_cents"`
	GraceMinutes       int                `json:"grace_minutes"`
	IdlePowerW         float64            `json:"idle_power_w"`
	Maintenance        []MaintenanceBlock `json:"maintenance"`
	CreatedAt          time.Time          `json:"created_at"`
}

// Validate checks a machine. groups lists the tariff groups prices may use.
func (m *Machine) Validate(groups []TariffGroup) error {
	m.Name = strings.TrimSpace(m.Name)
	if m.Name == "" || len(m.Name) > 200 {
		return Errorf(EINVALID, "name must be 1–200 characters").On("name").Say("problem_machine_name")
	}
	if !validSlug(m.Kind) {
		return Errorf(EINVALID, "kind must be 1–32 of a-z, 0-9 and - (e.g. %s, %s, %s)", Kind3DPrinter, KindLaserCutter, KindCNC).On("kind").Say("problem_machine_kind")
	}
	if len(m.Description) > 4000 {
		return Errorf(EINVALID, "description is limited to 4000 characters").On("description").Say("problem_machine_description")
	}
	if m.DeviceID != "" && !ValidDeviceID(m.DeviceID) {
		return Errorf(EINVALID, "device_id must be 1–32 of a-z, 0-9 and -").On("device_id").Say("problem_machine_device")
	}
	if m.State == "" {
		m.State = MachineAvailable
	}
	if m.State != MachineAvailable && m.State != MachineMaintenance && m.State != MachineRetired {
		return Errorf(EINVALID, "state must be available, maintenance or retired").On("state").Say("problem_machine_state")
	}
	if err := m.Rules.Validate(); err != nil {
		return err
	}
	if m.Prices == nil {
		m.Prices = map[string]int64{}
	}
	for g, p := range m.Prices {
		if !hasGroup(groups, g) {
			return Errorf(EINVALID, "prices: %q is not a tariff group (%s)", truncate(g, 40), groupList(groups)).On("prices").Say("problem_price_group", "Group", truncate(g, 40), "Groups", groupList(groups))
		}
		if p < 0 || p > 100_000_00 {
			return Errorf(EINVALID, "prices[%s] must be between 0 and 10000000 cents per hour", g).On("prices." + g).Say("problem_price_range")
		}
	}
	if m.MinimumChargeCents < 0 || m.NoShowFeeCents < 0 || m.GraceMinutes < 0 || m.GraceMinutes > 240 || m.IdlePowerW < 0 {
		return Errorf(EINVALID, "minimum charge, no-show fee, grace (0–240 min) and idle power must not be negative").Say("problem_machine_fees_negative")
	}
	if m.MinimumChargeCents > maxFeeCents || m.NoShowFeeCents > maxFeeCents || m.IdlePowerW > 1e6 {
		return Errorf(EINVALID, "minimum charge and no-show fee are limited to %d cents, idle power to 1000000 W", maxFeeCents).Say("problem_machine_fees_max")
	}
	if m.RequiredTrainings == nil {
		m.RequiredTrainings = []ID{}
	}
	seen := map[ID]bool{}
	for _, t := range m.RequiredTrainings {
		if seen[t] {
			return Errorf(EINVALID, "required_trainings lists training %s twice", t).On("required_trainings").Say("problem_training_twice")
		}
		seen[t] = true
	}
	if m.Maintenance == nil {
		m.Maintenance = []MaintenanceBlock{}
	}
	if len(m.Maintenance) > 100 {
		return Errorf(EINVALID, "at most 100 maintenance blocks").On("maintenance").Say("problem_maintenance_many")
	}
	for i, b := range m.Maintenance {
		if !b.End.After(b.Start) {
			return Errorf(EINVALID, "maintenance block must end after it starts").On("maintenance").Say("problem_maintenance_order")
		}
		if len(b.Reason) > 200 {
			return Errorf(EINVALID, "a maintenance reason is limited to 200 characters").On("maintenance").Say("problem_maintenance_reason")
		}
		m.Maintenance[i].Start, m.Maintenance[i].End = b.Start.UTC(), b.End.UTC() // instants are stored in UTC
	}
	return nil
}

// Booking states.
const (
	BookingConfirmed = "confirmed"
	BookingCancelled = "cancelled"
	BookingNoShow    = "no_show"
	BookingCompleted = "completed"
)

// Booking reserves a machine for a member over [Start, End).
type Booking struct {
	ID          ID         `json:"id"`
	MachineID   ID         `json:"machine_id"`
	MemberID    ID         `json:"member_id"`
	Start       time.Time  `json:"start"`
	End         time.Time  `json:"end"`
	State       string     `json:"state"`
	CreatedBy   ID         `json:"created_by,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	CancelledAt *time.Time `json:"cancelled_at,omitempty"`
	CancelledBy ID         `json:"cancelled_by,omitempty"`
	// RemindedAt is when the reminder mail was queued: at most one per
	// booking, across restarts.
	RemindedAt *time.Time `json:"reminded_at,omitempty"`
}

// Occupies reports whether the booking holds its time slot (confirmed or
// completed bookings do; cancelled and no-show ones released it).
func (b *Booking) Occupies() bool {
	return b.State == BookingConfirmed || b.State == BookingCompleted
}

// Interval returns [Start, End).
func (b *Booking) Interval() Interval { return Interval{Start: b.Start, End: b.End} }
