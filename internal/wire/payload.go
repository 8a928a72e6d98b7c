package wire

import (
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Status is a device's birth message and last will ({p}/dev/{dev}/status,
// QoS 1, retained). The will is {"v":1,"online":false}.
type Status struct {
	V      int    `json:"v"`
	Online bool   `json:"online"`            // required
	FW     string `json:"fw,omitempty"`      // firmware version, ≤ 64 bytes
	BootID string `json:"boot_id,omitempty"` // new at every boot, ≤ 64 visible ASCII
	TS     int64  `json:"ts,omitempty"`      // device clock, Unix seconds
}

// Heartbeat is a device's periodic liveness report ({p}/dev/{dev}/hb, QoS 0).
type Heartbeat struct {
	V         int      `json:"v"`
	TS        int64    `json:"ts"`                   // device clock, Unix seconds, ≥ 0
	UptimeS   int64    `json:"uptime_s"`             // seconds since boot, ≥ 0
	Relay     string   `json:"relay,omitempty"`      // on|off when known
	PowerW    *float64 `json:"power_w,omitempty"`    // watts, when the device measures it
	SessionID string   `json:"session_id,omitempty"` // the session the relay is on for
	AllowVer  int64    `json:"allow_ver"`            // ver of the allowlist held (0: none)
}

// Tap is a badge read ({p}/dev/{dev}/tap, QoS 1).
type Tap struct {
	V       int    `json:"v"`
	MsgID   string `json:"msg_id"`  // unique per tap, reused when replayed; 1–64 visible ASCII
	TS      int64  `json:"ts"`      // when the badge was read, Unix seconds, > 0
	UID     string `json:"uid"`     // badge UID; decoded to fablab.NormalizeUID's form
	Offline bool   `json:"offline"` // replayed from the offline queue: history, not a request

	// What the device decided alone, on replayed taps only (see TapGranted).
	Result    string `json:"result,omitempty"`     // TapGranted, TapDenied or TapOut
	Reason    string `json:"reason,omitempty"`     // denied: why; granted and ended: why it ended
	SessionID string `json:"session_id,omitempty"` // granted: the device's session; tap_out: the session it ended
	Until     int64  `json:"until,omitempty"`      // granted: the latest the device would end the session
	Ended     int64  `json:"ended,omitempty"`      // granted: when the session ended, once it has
}

// OfflineSessionPrefix starts the id a device gives a session it granted
// alone: "off-" + the granting tap's msg_id.
const OfflineSessionPrefix = "off-"

// The results of a tap the device decided alone (Tap.Result).
const (
	TapGranted = "granted" // the relay went on: a session the device ran
	TapDenied  = "denied"
	TapOut     = "tap_out" // the badge ended the running session
)

// Command is an order from the server ({p}/dev/{dev}/cmd, QoS 1, never
// retained).
type Command struct {
	V         int    `json:"v"`
	CmdID     string `json:"cmd_id"`               // 1–64 visible ASCII; the same on a resend
	Seq       uint64 `json:"seq"`                  // > 0, increasing per device
	Op        string `json:"op"`                   // Op*
	SessionID string `json:"session_id,omitempty"` // required by unlock
	Until     int64  `json:"until,omitempty"`      // unlock: power off at; required by unlock
	Reason    string `json:"reason,omitempty"`     // deny/warn (required), lock: a Reason* or End* code
	Message   string `json:"message,omitempty"`    // short text for the member's display, ≤ 200 bytes
	// TapID is the msg_id of the tap the command answers (unlock, deny, a
	// tap-out's lock); empty for a command that answers no tap. A device
	// clears the tap it waits on only for a command that names it.
	TapID string `json:"tap_id,omitempty"`
}

// Ack is a device's answer to a command ({p}/dev/{dev}/ack, QoS 1).
type Ack struct {
	V      int    `json:"v"`
	CmdID  string `json:"cmd_id"`           // the command's cmd_id
	Seq    uint64 `json:"seq"`              // the command's seq
	Result string `json:"result"`           // Result*
	Relay  string `json:"relay,omitempty"`  // relay state after the command
	Reason string `json:"reason,omitempty"` // why, for stale and error
}

// State is a device's relay state ({p}/dev/{dev}/state, QoS 1, retained),
// published at connect and on every change.
type State struct {
	V         int      `json:"v"`
	Relay     string   `json:"relay"`                // required: on|off
	SessionID string   `json:"session_id,omitempty"` // the session the relay is on for
	Since     int64    `json:"since"`                // relay in this state since, Unix seconds
	PowerW    *float64 `json:"power_w,omitempty"`    // watts, when measured
	Seq       uint64   `json:"seq"`                  // seq of the last applied command (0: none since boot)
}

// Allowlist is the list of badges a device may admit when it cannot reach
// the server ({p}/dev/{dev}/allowlist, QoS 1, retained). Up to
// MaxAllowlistPayload bytes.
type Allowlist struct {
	V       int          `json:"v"`
	Ver     int64        `json:"ver"`     // version, increasing; echoed in hb.allow_ver
	Issued  int64        `json:"issued"`  // when the server built it, Unix seconds
	Entries []AllowEntry `json:"entries"` // never null once decoded or encoded
	// Kid is the id of the device key the entries are hashed with
	// (protocol §8.1); 0 or absent: the bare lab key, as before key ids.
	Kid int64 `json:"kid,omitempty"`
}

// AllowEntry admits one badge offline.
type AllowEntry struct {
	H     string `json:"h"`     // lowercase hex HMAC-SHA256 of the normalised UID
	Tier  string `json:"tier"`  // Tier*
	Until int64  `json:"until"` // offline tier: admitted while now < until; admin: ignored
}

// ServerStatus is the server's birth message and last will
// ({p}/server/status, QoS 1, retained).
type ServerStatus struct {
	V      int  `json:"v"`
	Online bool `json:"online"` // required
}

func (p *Status) setVersion()       { p.V = Version }
func (p *Heartbeat) setVersion()    { p.V = Version }
func (p *Tap) setVersion()          { p.V = Version }
func (p *Command) setVersion()      { p.V = Version }
func (p *Ack) setVersion()          { p.V = Version }
func (p *State) setVersion()        { p.V = Version }
func (p *Allowlist) setVersion()    { p.V = Version }
func (p *ServerStatus) setVersion() { p.V = Version }

// validate checks the fields a decoder cannot check by type alone and puts
// them in canonical form. Field presence ("v", "online") is checked by the
// decoders.

func (p *Status) validate() error {
	const what = "status"
	if err := checkText(what, "fw", p.FW, MaxFWLen); err != nil {
		return err
	}
	if err := checkID(what, "boot_id", p.BootID, false); err != nil {
		return err
	}
	return checkTime(what, "ts", p.TS, false)
}

func (p *Heartbeat) validate() error {
	const what = "heartbeat"
	if err := checkTime(what, "ts", p.TS, false); err != nil {
		return err
	}
	if p.UptimeS < 0 {
		return invalid(what, "uptime_s must not be negative, got %d", p.UptimeS)
	}
	if p.Relay != "" {
		if err := checkRelay(what, p.Relay); err != nil {
			return err
		}
	}
	if err := checkPower(what, p.PowerW); err != nil {
		return err
	}
	if err := checkID(what, "session_id", p.SessionID, false); err != nil {
		return err
	}
	if p.AllowVer < 0 {
		return invalid(what, "allow_ver must not be negative, got %d", p.AllowVer)
	}
	return nil
}

func (p *Tap) validate() error {
	const what = "tap"
	if err := checkID(what, "msg_id", p.MsgID, true); err != nil {
		return err
	}
	if err := checkTime(what, "ts", p.TS, true); err != nil {
		return err
	}
	if p.UID == "" {
		return invalid(what, "uid is required")
	}
	u, err := fablab.NormalizeUID(p.UID)
	if err != nil {
		return invalid(what, "uid: %s", fablab.ErrorMessage(err))
	}
	p.UID = u
	if p.Result == "" {
		if p.Reason != "" || p.SessionID != "" || p.Until != 0 || p.Ended != 0 {
			return invalid(what, "reason, session_id, until and ended describe a decision: they need a result")
		}
		return nil
	}
	if !p.Offline {
		return invalid(what, "result is only sent on replayed taps (offline: true)")
	}
	switch p.Result {
	case TapGranted:
		if p.Until < p.TS {
			return invalid(what, "a granted tap needs until, at or after ts")
		}
		if p.Ended != 0 && p.Ended < p.TS {
			return invalid(what, "ended is before ts")
		}
	case TapDenied, TapOut:
		if p.Until != 0 || p.Ended != 0 {
			return invalid(what, "until and ended belong to a granted tap")
		}
	default:
		return invalid(what, "result %q is not granted, denied or tap_out", p.Result)
	}
	if err := checkID(what, "session_id", p.SessionID, p.Result != TapDenied); err != nil {
		return err
	}
	return checkText(what, "reason", p.Reason, MaxReasonLen)
}

func (p *Command) validate() error {
	const what = "command"
	if err := checkID(what, "cmd_id", p.CmdID, true); err != nil {
		return err
	}
	if p.Seq == 0 {
		return invalid(what, "seq is required and must be positive")
	}
	switch p.Op {
	case OpUnlock, OpLock, OpWarn, OpDeny, OpStatus:
	case "":
		return invalid(what, "op is required (unlock, lock, warn, deny or status)")
	default:
		return invalid(what, "op must be unlock, lock, warn, deny or status, got %q", clip(p.Op))
	}
	if err := checkID(what, "session_id", p.SessionID, p.Op == OpUnlock); err != nil {
		return err
	}
	if err := checkTime(what, "until", p.Until, p.Op == OpUnlock); err != nil {
		return err
	}
	if err := checkText(what, "reason", p.Reason, MaxReasonLen); err != nil {
		return err
	}
	if p.Reason == "" && (p.Op == OpDeny || p.Op == OpWarn) {
		return invalid(what, "%s needs a reason code", p.Op)
	}
	if err := checkID(what, "tap_id", p.TapID, false); err != nil {
		return err
	}
	return checkText(what, "message", p.Message, MaxMessageLen)
}

func (p *Ack) validate() error {
	const what = "ack"
	if err := checkID(what, "cmd_id", p.CmdID, true); err != nil {
		return err
	}
	if p.Seq == 0 {
		return invalid(what, "seq is required and must be positive")
	}
	switch p.Result {
	case ResultOK, ResultStale, ResultError:
	case "":
		return invalid(what, "result is required (ok, stale or error)")
	default:
		return invalid(what, "result must be ok, stale or error, got %q", clip(p.Result))
	}
	if p.Relay != "" {
		if err := checkRelay(what, p.Relay); err != nil {
			return err
		}
	}
	return checkText(what, "reason", p.Reason, MaxReasonLen)
}

func (p *State) validate() error {
	const what = "state"
	if p.Relay == "" {
		return invalid(what, "relay is required (on or off)")
	}
	if err := checkRelay(what, p.Relay); err != nil {
		return err
	}
	if err := checkID(what, "session_id", p.SessionID, false); err != nil {
		return err
	}
	if err := checkTime(what, "since", p.Since, false); err != nil {
		return err
	}
	return checkPower(what, p.PowerW)
}

func (p *Allowlist) validate() error {
	const what = "allowlist"
	if p.Ver < 0 {
		return invalid(what, "ver must not be negative, got %d", p.Ver)
	}
	if err := checkTime(what, "issued", p.Issued, false); err != nil {
		return err
	}
	if p.Kid < 0 {
		return invalid(what, "kid must not be negative, got %d", p.Kid)
	}
	if len(p.Entries) > MaxAllowlistEntries {
		return invalid(what, "%d entries, at most %d allowed", len(p.Entries), MaxAllowlistEntries)
	}
	if p.Entries == nil {
		p.Entries = []AllowEntry{}
	}
	for i, e := range p.Entries {
		if !isHash(e.H) {
			return invalid(what, "entries[%d].h must be 64 lowercase hex digits (HMAC-SHA256 of the badge uid)", i)
		}
		if err := checkTierUntil(i, e.Tier, e.Until); err != nil {
			return err
		}
	}
	return nil
}

// checkTierUntil checks the tier and until of entry i of an allowlist.
func checkTierUntil(i int, tier string, until int64) error {
	const what = "allowlist"
	if tier != TierOffline && tier != TierAdmin {
		return invalid(what, "entries[%d].tier must be offline or admin, got %q", i, clip(tier))
	}
	if until < 0 || until > MaxTime {
		return invalid(what, "entries[%d].until must be a Unix time in seconds between 0 and %d, got %d", i, MaxTime, until)
	}
	return nil
}

func invalid(what, format string, args ...any) *fablab.Error {
	return fablab.Errorf(fablab.EINVALID, what+": "+format, args...)
}

// checkID checks an identifier: 1–64 bytes of visible ASCII (0x21–0x7E).
func checkID(what, field, s string, required bool) error {
	if s == "" {
		if required {
			return invalid(what, "%s is required", field)
		}
		return nil
	}
	if len(s) > MaxIDLen {
		return invalid(what, "%s is %d bytes, at most %d allowed", field, len(s), MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return invalid(what, "%s may only contain visible ASCII characters (no spaces)", field)
		}
	}
	return nil
}

// checkText checks free text: at most max bytes, no control characters.
func checkText(what, field, s string, max int) error {
	if len(s) > max {
		return invalid(what, "%s is %d bytes, at most %d allowed", field, len(s), max)
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return invalid(what, "%s must not contain control characters", field)
	}
	return nil
}

// checkTime checks a Unix time in seconds: 0 ≤ t ≤ MaxTime, and t > 0 when
// required.
func checkTime(what, field string, t int64, required bool) error {
	if required && t == 0 {
		return invalid(what, "%s is required (Unix time in seconds)", field)
	}
	if t < 0 || t > MaxTime {
		return invalid(what, "%s must be a Unix time in seconds between 0 and %d, got %d", field, MaxTime, t)
	}
	return nil
}

func checkRelay(what, r string) error {
	if r != RelayOn && r != RelayOff {
		return invalid(what, "relay must be on or off, got %q", clip(r))
	}
	return nil
}

func checkPower(what string, w *float64) error {
	if w != nil && (math.IsNaN(*w) || math.IsInf(*w, 0) || *w < 0) {
		return invalid(what, "power_w must be a finite number of watts ≥ 0, got %v", *w)
	}
	return nil
}

func isHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	const n = 32
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
