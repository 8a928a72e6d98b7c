package wire

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// roundTrip encodes v and decodes the result with decode; the decoded value
// must equal want.
func roundTrip[T any](t *testing.T, v any, decode func([]byte) (T, error), want T) []byte {
	t.Helper()
	b, err := Encode(v)
	if err != nil {
		t.Fatalf("Encode(%+v): %v", v, err)
	}
	got, err := decode(b)
	if err != nil {
		t.Fatalf("decode(%s): %v", b, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip of %+v\n  via %s\n  gave %+v\n  want %+v", v, b, got, want)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	h := hexHash('c')
	cases := []struct {
		name string
		run  func(t *testing.T) []byte
		json string // the exact encoding, when checked
	}{
		{name: "status birth", run: func(t *testing.T) []byte {
			v := Status{Online: true, FW: "1.2.0", BootID: "b-1", TS: 1767225600}
			w := v
			w.V = 1
			return roundTrip(t, v, DecodeStatus, w)
		}, json: `{"v":1,"online":true,"fw":"1.2.0","boot_id":"b-1","ts":1767225600}`},
		{name: "status lwt", run: func(t *testing.T) []byte {
			return roundTrip(t, Status{}, DecodeStatus, Status{V: 1})
		}, json: `{"v":1,"online":false}`},
		{name: "heartbeat", run: func(t *testing.T) []byte {
			v := Heartbeat{TS: 1767225600, UptimeS: 3600, Relay: RelayOn, PowerW: ptr(812.5), SessionID: "s-1", AllowVer: 42}
			w := v
			w.V = 1
			return roundTrip(t, &v, DecodeHeartbeat, w)
		}, json: `{"v":1,"ts":1767225600,"uptime_s":3600,"relay":"on","power_w":812.5,"session_id":"s-1","allow_ver":42}`},
		{name: "heartbeat minimal", run: func(t *testing.T) []byte {
			return roundTrip(t, Heartbeat{TS: 5}, DecodeHeartbeat, Heartbeat{V: 1, TS: 5})
		}, json: `{"v":1,"ts":5,"uptime_s":0,"allow_ver":0}`},
		{name: "tap", run: func(t *testing.T) []byte {
			v := Tap{MsgID: "m-1", TS: 1767225600, UID: "04A2B3C4D5E6F7", Offline: true}
			w := v
			w.V = 1
			return roundTrip(t, v, DecodeTap, w)
		}, json: `{"v":1,"msg_id":"m-1","ts":1767225600,"uid":"04A2B3C4D5E6F7","offline":true}`},
		{name: "tap uid normalised", run: func(t *testing.T) []byte {
			return roundTrip(t, Tap{MsgID: "m-1", TS: 1, UID: "04:a2:b3"}, DecodeTap, Tap{V: 1, MsgID: "m-1", TS: 1, UID: "04A2B3"})
		}, json: `{"v":1,"msg_id":"m-1","ts":1,"uid":"04A2B3","offline":false}`},
		{name: "command unlock", run: func(t *testing.T) []byte {
			v := Command{CmdID: "c-1", Seq: 1207, Op: OpUnlock, SessionID: "s-1", Until: 1767232800, Message: "Bonjour <Ada> & co"}
			w := v
			w.V = 1
			return roundTrip(t, v, DecodeCommand, w)
		}, json: `{"v":1,"cmd_id":"c-1","seq":1207,"op":"unlock","session_id":"s-1","until":1767232800,"message":"Bonjour <Ada> & co"}`},
		{name: "command deny", run: func(t *testing.T) []byte {
			v := Command{CmdID: "c-2", Seq: 2, Op: OpDeny, Reason: ReasonBookedByOther, Message: "Réservé jusqu'à 16:00"}
			w := v
			w.V = 1
			return roundTrip(t, v, DecodeCommand, w)
		}, json: `{"v":1,"cmd_id":"c-2","seq":2,"op":"deny","reason":"booked_by_other","message":"Réservé jusqu'à 16:00"}`},
		{name: "command lock", run: func(t *testing.T) []byte {
			return roundTrip(t, Command{CmdID: "c-3", Seq: 3, Op: OpLock, Reason: "relay_unconfirmed"}, DecodeCommand,
				Command{V: 1, CmdID: "c-3", Seq: 3, Op: OpLock, Reason: "relay_unconfirmed"})
		}},
		{name: "command warn", run: func(t *testing.T) []byte {
			v := Command{CmdID: "c-4", Seq: 4, Op: OpWarn, SessionID: "s", Until: 9, Reason: ReasonSessionEnding}
			w := v
			w.V = 1
			return roundTrip(t, v, DecodeCommand, w)
		}},
		{name: "command status", run: func(t *testing.T) []byte {
			return roundTrip(t, Command{CmdID: "c-5", Seq: math.MaxUint64, Op: OpStatus}, DecodeCommand, Command{V: 1, CmdID: "c-5", Seq: math.MaxUint64, Op: OpStatus})
		}, json: `{"v":1,"cmd_id":"c-5","seq":18446744073709551615,"op":"status"}`},
		{name: "ack", run: func(t *testing.T) []byte {
			v := Ack{CmdID: "c-1", Seq: 1207, Result: ResultStale, Relay: RelayOff, Reason: "seq"}
			w := v
			w.V = 1
			return roundTrip(t, v, DecodeAck, w)
		}, json: `{"v":1,"cmd_id":"c-1","seq":1207,"result":"stale","relay":"off","reason":"seq"}`},
		{name: "state", run: func(t *testing.T) []byte {
			v := State{Relay: RelayOn, SessionID: "s-1", Since: 1767225600, PowerW: ptr(0.0), Seq: 1207}
			w := v
			w.V = 1
			return roundTrip(t, v, DecodeState, w)
		}, json: `{"v":1,"relay":"on","session_id":"s-1","since":1767225600,"power_w":0,"seq":1207}`},
		{name: "allowlist", run: func(t *testing.T) []byte {
			v := Allowlist{Ver: 42, Issued: 1767225600, Entries: []AllowEntry{{H: h, Tier: TierOffline, Until: 1767312000}, {H: h, Tier: TierAdmin}}}
			w := v
			w.V = 1
			return roundTrip(t, v, DecodeAllowlist, w)
		}, json: `{"v":1,"ver":42,"issued":1767225600,"entries":[{"h":"` + h + `","tier":"offline","until":1767312000},{"h":"` + h + `","tier":"admin","until":0}]}`},
		{name: "allowlist nil entries", run: func(t *testing.T) []byte {
			return roundTrip(t, &Allowlist{Ver: 1}, DecodeAllowlist, Allowlist{V: 1, Ver: 1, Entries: []AllowEntry{}})
		}, json: `{"v":1,"ver":1,"issued":0,"entries":[]}`},
		{name: "allowlist maximal", run: func(t *testing.T) []byte {
			v := Allowlist{Ver: math.MaxInt64, Issued: MaxTime, Entries: make([]AllowEntry, MaxAllowlistEntries)}
			for i := range v.Entries {
				v.Entries[i] = AllowEntry{H: h, Tier: TierOffline, Until: MaxTime}
			}
			w := v
			w.V = 1
			return roundTrip(t, v, DecodeAllowlist, w)
		}},
		{name: "server status", run: func(t *testing.T) []byte {
			return roundTrip(t, ServerStatus{Online: true}, DecodeServerStatus, ServerStatus{V: 1, Online: true})
		}, json: `{"v":1,"online":true}`},
		{name: "server status offline", run: func(t *testing.T) []byte {
			return roundTrip(t, &ServerStatus{V: 7}, DecodeServerStatus, ServerStatus{V: 1})
		}, json: `{"v":1,"online":false}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.run(t)
			if tc.json != "" && string(b) != tc.json {
				t.Fatalf("encoded\n  %s\nwant\n  %s", b, tc.json)
			}
		})
	}
}

func TestEncodeDoesNotModify(t *testing.T) {
	tap := &Tap{MsgID: "m", TS: 1, UID: "04:a2"}
	if _, err := Encode(tap); err != nil {
		t.Fatal(err)
	}
	if tap.V != 0 || tap.UID != "04:a2" {
		t.Fatalf("Encode modified its argument: %+v", tap)
	}
}

func TestEncodeRejects(t *testing.T) {
	tooMany := Allowlist{Entries: make([]AllowEntry, MaxAllowlistEntries+1)}
	for i := range tooMany.Entries {
		tooMany.Entries[i] = AllowEntry{H: hexHash('e'), Tier: TierAdmin}
	}
	cases := []struct {
		name string
		v    any
		err  string
	}{
		{name: "unknown type", v: struct{ V int }{}, err: "is not a payload of the MQTT contract"},
		{name: "map", v: map[string]any{"v": 1}, err: "is not a payload"},
		{name: "nil", v: nil, err: "<nil> is not a payload"},
		{name: "nil pointer", v: (*Tap)(nil), err: "cannot encode a nil *wire.Tap"},
		{name: "pointer to pointer", v: ptr(&Tap{}), err: "is not a payload"},
		{name: "tap without msg_id", v: Tap{TS: 1, UID: "0102"}, err: "tap: msg_id is required"},
		{name: "tap bad uid", v: Tap{MsgID: "m", TS: 1, UID: "zz"}, err: "tap: uid: badge uid must be hexadecimal"},
		{name: "command bad op", v: Command{CmdID: "c", Seq: 1, Op: "open"}, err: "command: op must be"},
		{name: "unlock without until", v: &Command{CmdID: "c", Seq: 1, Op: OpUnlock, SessionID: "s"}, err: "until is required"},
		{name: "deny without reason", v: Command{CmdID: "c", Seq: 1, Op: OpDeny}, err: "deny needs a reason code"},
		{name: "message too long", v: Command{CmdID: "c", Seq: 1, Op: OpDeny, Reason: "x", Message: strings.Repeat("m", 201)}, err: "message is 201 bytes"},
		{name: "ack seq zero", v: Ack{CmdID: "c", Result: ResultOK}, err: "ack: seq is required"},
		{name: "state no relay", v: State{}, err: "state: relay is required"},
		{name: "heartbeat NaN power", v: Heartbeat{PowerW: ptr(math.NaN())}, err: "cannot encode wire.Heartbeat"},
		{name: "heartbeat infinite power", v: Heartbeat{PowerW: ptr(math.Inf(1))}, err: "cannot encode"},
		{name: "heartbeat negative power", v: Heartbeat{PowerW: ptr(-1.0)}, err: "power_w must be a finite number"},
		{name: "status long fw", v: Status{FW: strings.Repeat("f", 65)}, err: "fw is 65 bytes"},
		{name: "allowlist bad hash", v: Allowlist{Entries: []AllowEntry{{H: "ABC", Tier: TierAdmin}}}, err: "entries[0].h"},
		{name: "allowlist too many entries", v: tooMany, err: "10001 entries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(tc.v)
			wantInvalid(t, err, tc.err)
			if b != nil {
				t.Fatalf("returned %s with the error", b)
			}
		})
	}
}
