package fablab

import (
	"strings"
	"time"
)

// Device kinds, as devices report them.
const (
	DeviceBridge     = "bridge"
	DeviceShellyGen1 = "shelly-gen1"
	DeviceShellyGen2 = "shelly-gen2"
	DeviceTasmota    = "tasmota"
)

// Device is a badge reader and/or machine relay speaking the MQTT contract.
// Its MQTT username is its id; its secret is stored hashed.
type Device struct {
	ID         string    `json:"id"`
	MachineID  ID        `json:"machine_id,omitempty"`
	Kind       string    `json:"kind"`
	SecretHash string    `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
	// Disabled devices may not log in to the broker; their open connection
	// is cut when they are disabled.
	Disabled bool `json:"disabled"`
}

// Validate checks a device.
func (d *Device) Validate() error {
	if !ValidDeviceID(d.ID) {
		return Errorf(EINVALID, "device id must be 1–32 of a-z, 0-9 and - (e.g. laser-1)").On("id").Say("problem_device_id")
	}
	if strings.HasPrefix(d.ID, "fabgate-") {
		return Errorf(EINVALID, "device ids starting with fabgate- are reserved for the server's own MQTT users").On("id").Say("problem_device_reserved")
	}
	if d.Kind == "" {
		d.Kind = DeviceBridge
	}
	switch d.Kind {
	case DeviceBridge, DeviceShellyGen1, DeviceShellyGen2, DeviceTasmota:
	default:
		return Errorf(EINVALID, "kind must be bridge, shelly-gen1, shelly-gen2 or tasmota").On("kind").Say("problem_device_kind")
	}
	return nil
}

// DeviceState is what the server knows of a device at run time, from its
// status, heartbeats, state and acks.
type DeviceState struct {
	Online    bool       `json:"online"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	FW        string     `json:"fw,omitempty"`
	BootID    string     `json:"boot_id,omitempty"`
	Relay     string     `json:"relay,omitempty"`
	PowerW    *float64   `json:"power_w,omitempty"`
	SessionID string     `json:"session_id,omitempty"`
}

// EndReason says why a session ended (DESIGN §2, §3). It is a closed set:
// the store refuses any other value, and a reason a device sends is mapped to
// one with DeviceEndReason, never stored as sent.
type EndReason string

// Session end reasons. They are untyped constants on purpose: the same codes
// travel as plain strings in a lock command's reason and an audit line's
// reason, and an untyped constant fits both; only Session.EndReason and the
// store's parameters carry the type, so a string read from outside needs
// ParseEndReason or DeviceEndReason to get there.
const (
	EndTapOut           = "tap_out"
	EndBookingEnd       = "booking_end"
	EndStaff            = "staff"
	EndDeviceOffline    = "device_offline"
	EndPowerIdle        = "power_idle"
	EndRelayOff         = "relay_off"
	EndServerRestart    = "server_restart"
	EndRelayUnconfirmed = "relay_unconfirmed" // the relay never confirmed the unlock: not billed
	// EndReplaced: another session took the machine over, e.g. a session
	// a device granted alone, overtaken by one the server granted.
	EndReplaced = "replaced"
)

// EndReasons returns every valid end reason, in the order of the API's enum.
func EndReasons() []EndReason {
	return []EndReason{EndTapOut, EndBookingEnd, EndStaff, EndDeviceOffline, EndPowerIdle,
		EndRelayOff, EndServerRestart, EndRelayUnconfirmed, EndReplaced}
}

// Valid reports whether r is one of EndReasons.
func (r EndReason) Valid() bool {
	switch r {
	case EndTapOut, EndBookingEnd, EndStaff, EndDeviceOffline, EndPowerIdle,
		EndRelayOff, EndServerRestart, EndRelayUnconfirmed, EndReplaced:
		return true
	}
	return false
}

// ParseEndReason returns s as an end reason. Errors: EINVALID when s is not
// one of EndReasons.
func ParseEndReason(s string) (EndReason, error) {
	if r := EndReason(s); r.Valid() {
		return r, nil
	}
	return "", Errorf(EINVALID, "end reason must be one of tap_out, booking_end, staff, device_offline, power_idle, relay_off, server_restart, relay_unconfirmed or replaced")
}

// deviceRestart is the code a fabgate-bridge gives for a session cut by its
// stopping or restarting (docs/protocol.md §5.3): its relay went off, as the
// server records a restart it sees itself (relay_off).
const deviceRestart = "device_restart"

// DeviceEndReason maps the reason a device gives for the end of a session it
// decided alone (a replayed tap's reason) to an end reason. Devices may send
// any code (a deny code, a fault of their own): what the server does not
// know is a session the device switched off itself, relay_off. A device
// cannot make a session unbillable: relay_unconfirmed is the server's
// judgement, and is relay_off when a device claims it. An empty reason is a
// tap-out (a device that says nothing ended it the ordinary way).
func DeviceEndReason(code string) EndReason {
	switch code {
	case "":
		return EndTapOut
	case deviceRestart, EndRelayUnconfirmed:
		return EndRelayOff
	}
	if r := EndReason(code); r.Valid() {
		return r
	}
	return EndRelayOff
}

// Session is one use of a machine: opened durably before the relay is told
// to switch on, closed exactly once.
type Session struct {
	ID        ID         `json:"id"`
	MachineID ID         `json:"machine_id"`
	MemberID  ID         `json:"member_id"`
	BookingID ID         `json:"booking_id,omitempty"` // 0 for a walk-in
	DeviceID  string     `json:"device_id"`
	Started   time.Time  `json:"started"`
	Until     time.Time  `json:"until"` // when power must go off
	Ended     *time.Time `json:"ended,omitempty"`
	EndReason EndReason  `json:"end_reason,omitempty"`
	EndedBy   ID         `json:"ended_by,omitempty"` // who ended it: staff (EndStaff), or the member tapping out (EndTapOut)
	Offline   bool       `json:"offline,omitempty"`  // decided by the device while the server was out of reach
	TapMsgID  string     `json:"tap_msg_id,omitempty"`
	CmdID     string     `json:"cmd_id,omitempty"`    // the unlock command
	Confirmed bool       `json:"confirmed,omitempty"` // the relay acknowledged the unlock
	Billable  bool       `json:"billable"`            // false for relay_unconfirmed
	ChargeID  ID         `json:"charge_id,omitempty"`
}

// Open reports whether the session has not ended.
func (s *Session) Open() bool { return s.Ended == nil }

// Audit event kinds.
const (
	AuditTap     = "tap"
	AuditCommand = "command"
	AuditAck     = "ack"
	AuditSession = "session"
	AuditDevice  = "device"
	AuditAPI     = "api"
)

// AuditEvent is one line of the append-only audit log.
type AuditEvent struct {
	ID        ID             `json:"id"`
	At        time.Time      `json:"at"`
	Kind      string         `json:"kind"`
	Action    string         `json:"action"` // e.g. "granted", "denied", "unlock", "ended"
	ActorID   ID             `json:"actor_id,omitempty"`
	MemberID  ID             `json:"member_id,omitempty"`
	MachineID ID             `json:"machine_id,omitempty"`
	DeviceID  string         `json:"device_id,omitempty"`
	SessionID ID             `json:"session_id,omitempty"`
	Reason    string         `json:"reason,omitempty"`
	Detail    map[string]any `json:"detail,omitempty"`
}

// UnknownTap is a tap of a badge no member holds, kept 24 hours so that staff
// can enrol "the badge just tapped on the laser".
type UnknownTap struct {
	Hash     string    `json:"hash"`
	At       time.Time `json:"at"`
	DeviceID string    `json:"device_id"`
}

// AccessFacts is what deciding a tap reads, in one transaction: the input
// of the access decision (DESIGN §3).
type AccessFacts struct {
	Settings  Settings
	Machine   Machine
	Member    *Member // nil: nobody holds the badge
	Quals     []Qualification
	Trainings map[ID]string // names of the machine's required trainings
	Open      *Session      // the machine's open session
	// Bookings are the machine's occupying bookings overlapping [now, now+ahead).
	Bookings []Booking
	// NextStart is the start of the machine's first occupying booking after
	// now, if any starts within ahead.
	NextStart *time.Time
}
