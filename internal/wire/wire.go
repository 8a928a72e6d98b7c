// Package wire is FabGate's MQTT contract, version 1 (DESIGN §4, docs/protocol.md):
// the topic layout and the JSON payloads exchanged between the server and the
// devices (fabgate-bridge or any third-party reader or relay). Both sides use
// it, so the rules a payload must follow live in one place: every Decode*
// function rejects a malformed payload with a *fablab.Error of code
// fablab.EINVALID that says what is wrong, and Encode refuses to produce a
// payload its own decoder would reject.
//
// The package depends on the standard library and internal/fablab only.
package wire

import "time"

// Version is the protocol version carried as "v" in every payload.
const Version = 1

// DefaultPrefix is the topic prefix used unless the lab configures another.
const DefaultPrefix = "fabgate/v1"

// Payload size limits, in bytes of the encoded message. Larger payloads are
// rejected without being parsed.
const (
	MaxPayload = 4096 // every payload but the allowlist
	// MaxAllowlistPayload is the allowlist's limit, 1.25 MiB: a list of
	// MaxAllowlistEntries entries takes up to 1,110,068 bytes, so any list
	// within the entry limit fits.
	MaxAllowlistPayload = 5 << 18
)

// Field limits. Lengths are in bytes of UTF-8.
const (
	MaxIDLen            = 64    // msg_id, cmd_id, session_id, boot_id
	MaxFWLen            = 64    // fw
	MaxReasonLen        = 64    // reason
	MaxMessageLen       = 200   // message
	MaxAllowlistEntries = 10000 // entries of one allowlist
	// MaxTime is the largest instant a payload may carry (9999-12-31T23:59:59Z),
	// so every time in the contract converts to a time.Time that formats as RFC 3339.
	MaxTime int64 = 253402300799
)

// Timings of the contract. Device makers must respect the Max* values; the
// others say what each side can expect of the other.
const (
	// HeartbeatInterval is how often a device publishes hb.
	HeartbeatInterval = 30 * time.Second
	// MissedHeartbeats is how many heartbeats in a row a device may miss
	// before the server considers it offline.
	MissedHeartbeats = 3
	// AckTimeout is how long the server waits for the ack of a command
	// before it sends it again (same cmd_id and seq).
	AckTimeout = 3 * time.Second
	// CommandTries is how many times the server sends a command in all.
	CommandTries = 3
	// RereadWindow is how long a device ignores the same badge UID read again.
	RereadWindow = 2 * time.Second
	// AnswerTimeout is how long a device waits for the server's answer
	// (unlock or deny) to a tap before it decides locally from its allowlist.
	AnswerTimeout = 2 * time.Second
	// DefaultMaxOfflineAge is how old an allowlist may be and still grant the
	// offline tier.
	DefaultMaxOfflineAge = 24 * time.Hour
	// MaxKeepAlive is the longest MQTT keepalive a client may use.
	MaxKeepAlive = 20 * time.Second
	// MaxReconnectInterval is the longest a client may wait between
	// reconnection attempts.
	MaxReconnectInterval = 5 * time.Second
)

// Kind is the last level of a device topic: what the message is.
type Kind string

// The kinds of device topic ({p}/dev/{dev}/{kind}).
const (
	KindStatus    Kind = "status"    // device → server: birth and LWT, QoS 1, retained
	KindHeartbeat Kind = "hb"        // device → server: every 30 s, QoS 0
	KindTap       Kind = "tap"       // device → server: a badge was read, QoS 1
	KindCmd       Kind = "cmd"       // server → device: a command, QoS 1, never retained
	KindAck       Kind = "ack"       // device → server: a command's outcome, QoS 1
	KindState     Kind = "state"     // device → server: relay state, QoS 1, retained
	KindAllowlist Kind = "allowlist" // server → device: the offline list, QoS 1, retained
)

// Kinds returns every kind, device-published ones first.
func Kinds() []Kind {
	return []Kind{KindStatus, KindHeartbeat, KindTap, KindAck, KindState, KindCmd, KindAllowlist}
}

// Valid reports whether k is a kind of the contract.
func (k Kind) Valid() bool {
	switch k {
	case KindStatus, KindHeartbeat, KindTap, KindCmd, KindAck, KindState, KindAllowlist:
		return true
	}
	return false
}

// FromDevice reports whether devices publish messages of kind k (and the
// server subscribes to them); false for the server's cmd and allowlist and
// for unknown kinds.
func (k Kind) FromDevice() bool {
	switch k {
	case KindStatus, KindHeartbeat, KindTap, KindAck, KindState:
		return true
	}
	return false
}

// QoS is the MQTT quality of service messages of kind k are published with:
// 0 for heartbeats (the next one follows in 30 s), 1 for everything else.
func (k Kind) QoS() byte {
	if k == KindHeartbeat {
		return 0
	}
	return 1
}

// Retained reports whether messages of kind k are published retained: the
// ones that describe a current state (status, state, allowlist). Commands are
// never retained.
func (k Kind) Retained() bool {
	return k == KindStatus || k == KindState || k == KindAllowlist
}

// Command operations (Command.Op).
const (
	OpUnlock = "unlock" // switch the relay on for session_id until until
	OpLock   = "lock"   // switch the relay off
	OpWarn   = "warn"   // tell the member (display/LED/buzzer); the relay is unchanged
	OpDeny   = "deny"   // tell the member the tap is refused; the relay is unchanged
	OpStatus = "status" // publish state now; the relay is unchanged
)

// Command results (Ack.Result).
const (
	ResultOK    = "ok"    // the command was applied
	ResultStale = "stale" // seq at or below the last applied one: not applied
	ResultError = "error" // the device could not apply it (reason says why)
)

// Relay states (Heartbeat.Relay, Ack.Relay, State.Relay).
const (
	RelayOn  = "on"
	RelayOff = "off"
)

// Allowlist tiers (AllowEntry.Tier).
const (
	TierOffline = "offline" // may unlock offline while until is in the future and the list is fresh
	TierAdmin   = "admin"   // may always unlock offline
)

// Reason codes of deny and warn commands (DESIGN §3). Devices must accept
// codes they do not know (a newer server may add some) and show the message.
const (
	ReasonUnknownBadge       = "unknown_badge"
	ReasonMemberInactive     = "member_inactive"
	ReasonMachineUnavailable = "machine_unavailable"
	ReasonTrainingRequired   = "training_required"
	ReasonInUse              = "in_use"
	ReasonBookedSoon         = "booked_soon"
	ReasonBookedByOther      = "booked_by_other"
	ReasonSessionEnding      = "session_ending" // warn: power goes off at until
	ReasonNoMachine          = "no_machine"     // the reader is not bound to a machine
	ReasonServerError        = "server_error"   // the server could not decide (see its log)
)

// The reason of a lock command that ends a session is the session's end
// reason: tap_out, booking_end, staff, device_offline, power_idle, relay_off,
// server_restart or relay_unconfirmed (the fablab.End* constants).
