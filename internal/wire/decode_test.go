package wire

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

// envelopeCases are the rules every decoder shares, built around body: the
// fields (without braces and without "v") of a payload that is valid.
func envelopeCases[T any](body string, limit int) []dcase[T] {
	valid := `{"v":1,` + body + `}`
	return []dcase[T]{
		{name: "envelope/valid", in: valid},
		{name: "envelope/whitespace around", in: " \n\t" + valid + "\r\n "},
		{name: "envelope/v last", in: `{` + body + `,"v":1}`},
		{name: "envelope/unknown fields ignored", in: `{"v":1,"future":{"a":[1,"b",null]},"x_vendor":"y",` + body + `}`},
		{name: "envelope/at the size limit", in: valid + strings.Repeat(" ", limit-len(valid))},
		{name: "envelope/over the size limit", in: valid + strings.Repeat(" ", limit-len(valid)+1), err: fmt.Sprintf("payload is %d bytes, at most %d allowed", limit+1, limit)},
		{name: "envelope/empty", in: "", err: "payload is empty"},
		{name: "envelope/blank", in: " \n ", err: "payload is empty"},
		{name: "envelope/null", in: "null", err: "must be a JSON object"},
		{name: "envelope/array", in: "[" + valid + "]", err: "must be a JSON object"},
		{name: "envelope/string", in: `"v"`, err: "must be a JSON object"},
		{name: "envelope/number", in: `1`, err: "must be a JSON object"},
		{name: "envelope/two objects", in: valid + valid, err: "trailing data"},
		{name: "envelope/trailing garbage", in: valid + " x", err: "trailing data"},
		{name: "envelope/trailing brace", in: valid + "}", err: "trailing data"},
		{name: "envelope/truncated", in: valid[:len(valid)-1], err: "truncated"},
		{name: "envelope/trailing comma", in: `{"v":1,` + body + `,}`, err: "not valid JSON"},
		{name: "envelope/single quotes", in: `{'v':1}`, err: "not valid JSON"},
		{name: "envelope/invalid utf-8", in: `{"v":1,"x":"` + "\xff\xfe" + `",` + body + `}`, err: "not valid UTF-8"},
		{name: "envelope/v missing", in: `{` + body + `}`, err: `"v" is missing`},
		{name: "envelope/v null", in: `{"v":null,` + body + `}`, err: `"v" is missing`},
		{name: "envelope/v 0", in: `{"v":0,` + body + `}`, err: "unsupported protocol version v=0"},
		{name: "envelope/v 2", in: `{"v":2,` + body + `}`, err: "unsupported protocol version v=2: this side speaks version 1"},
		{name: "envelope/v -1", in: `{"v":-1,` + body + `}`, err: "version v=-1"},
		{name: "envelope/v string", in: `{"v":"1",` + body + `}`, err: "v must be an integer, got JSON string"},
		{name: "envelope/v float", in: `{"v":1.0,` + body + `}`, err: "v must be an integer"},
		{name: "envelope/v bool", in: `{"v":true,` + body + `}`, err: "v must be an integer"},
		{name: "envelope/v huge", in: `{"v":1e99,` + body + `}`, err: "v must be an integer"},
	}
}

func TestDecodeStatus(t *testing.T) {
	cases := append(envelopeCases[Status](`"online":true,"fw":"1.2.0"`, MaxPayload), []dcase[Status]{
		{name: "birth", in: `{"v":1,"online":true,"fw":"1.2.0","boot_id":"b-7f3a9c","ts":1767225600}`,
			want: &Status{V: 1, Online: true, FW: "1.2.0", BootID: "b-7f3a9c", TS: 1767225600}},
		{name: "lwt", in: `{"v":1,"online":false}`, want: &Status{V: 1}},
		{name: "fw at 64 bytes", in: `{"v":1,"online":true,"fw":"` + strings.Repeat("f", 64) + `"}`},
		{name: "fw with unicode", in: `{"v":1,"online":true,"fw":"1.2.0-bêta"}`},
		{name: "ts at MaxTime", in: `{"v":1,"online":true,"ts":253402300799}`},
		{name: "online null is missing", in: `{"v":1,"online":null}`, err: "online is required"},
		{name: "online missing", in: `{"v":1}`, err: "status: online is required"},
		{name: "online string", in: `{"v":1,"online":"true"}`, err: "online must be true or false, got JSON string"},
		{name: "online number", in: `{"v":1,"online":1}`, err: "online must be true or false"},
		{name: "fw too long", in: `{"v":1,"online":true,"fw":"` + strings.Repeat("f", 65) + `"}`, err: "fw is 65 bytes, at most 64 allowed"},
		{name: "fw control character", in: `{"v":1,"online":true,"fw":"1.2\u0007"}`, err: "fw must not contain control characters"},
		{name: "fw number", in: `{"v":1,"online":true,"fw":120}`, err: "fw must be a string, got JSON number"},
		{name: "boot_id too long", in: `{"v":1,"online":true,"boot_id":"` + strings.Repeat("b", 65) + `"}`, err: "boot_id is 65 bytes"},
		{name: "boot_id with space", in: `{"v":1,"online":true,"boot_id":"b 1"}`, err: "boot_id may only contain visible ASCII"},
		{name: "boot_id non-ascii", in: `{"v":1,"online":true,"boot_id":"…"}`, err: "boot_id may only contain visible ASCII"},
		{name: "ts negative", in: `{"v":1,"online":true,"ts":-1}`, err: "ts must be a Unix time in seconds between 0 and 253402300799, got -1"},
		{name: "ts after year 9999", in: `{"v":1,"online":true,"ts":253402300800}`, err: "ts must be a Unix time"},
		{name: "ts milliseconds float", in: `{"v":1,"online":true,"ts":1767225600.5}`, err: "ts must be an integer"},
		{name: "ts string", in: `{"v":1,"online":true,"ts":"1767225600"}`, err: "ts must be an integer, got JSON string"},
	}...)
	runDecodeCases(t, DecodeStatus, cases)
}

func TestDecodeHeartbeat(t *testing.T) {
	cases := append(envelopeCases[Heartbeat](`"ts":1767225600,"uptime_s":10`, MaxPayload), []dcase[Heartbeat]{
		{name: "full", in: `{"v":1,"ts":1767225600,"uptime_s":86400,"relay":"on","power_w":812.5,"session_id":"s-42","allow_ver":42}`,
			want: &Heartbeat{V: 1, TS: 1767225600, UptimeS: 86400, Relay: RelayOn, PowerW: ptr(812.5), SessionID: "s-42", AllowVer: 42}},
		{name: "minimal", in: `{"v":1,"ts":1767225600,"uptime_s":0}`, want: &Heartbeat{V: 1, TS: 1767225600}},
		{name: "only v", in: `{"v":1}`, want: &Heartbeat{V: 1}},
		{name: "relay off no power", in: `{"v":1,"ts":1,"uptime_s":5,"relay":"off","allow_ver":0}`},
		{name: "power zero", in: `{"v":1,"ts":1,"uptime_s":5,"power_w":0}`, want: &Heartbeat{V: 1, TS: 1, UptimeS: 5, PowerW: ptr(0.0)}},
		{name: "power null is absent", in: `{"v":1,"ts":1,"uptime_s":5,"power_w":null}`, want: &Heartbeat{V: 1, TS: 1, UptimeS: 5}},
		{name: "power integer", in: `{"v":1,"ts":1,"uptime_s":5,"power_w":3}`},
		{name: "power exponent", in: `{"v":1,"ts":1,"uptime_s":5,"power_w":1.5e3}`},
		{name: "relay upper case", in: `{"v":1,"ts":1,"uptime_s":5,"relay":"ON"}`, err: `relay must be on or off, got "ON"`},
		{name: "relay bool", in: `{"v":1,"ts":1,"uptime_s":5,"relay":true}`, err: "relay must be a string"},
		{name: "relay unknown", in: `{"v":1,"ts":1,"uptime_s":5,"relay":"toggling"}`, err: "relay must be on or off"},
		{name: "power negative", in: `{"v":1,"ts":1,"uptime_s":5,"power_w":-0.5}`, err: "power_w must be a finite number of watts ≥ 0"},
		{name: "power string", in: `{"v":1,"ts":1,"uptime_s":5,"power_w":"812.5"}`, err: "power_w must be a number, got JSON string"},
		{name: "power overflow", in: `{"v":1,"ts":1,"uptime_s":5,"power_w":1e400}`, err: "power_w must be a number"},
		{name: "uptime negative", in: `{"v":1,"ts":1,"uptime_s":-1}`, err: "uptime_s must not be negative"},
		{name: "uptime float", in: `{"v":1,"ts":1,"uptime_s":1.5}`, err: "uptime_s must be an integer"},
		{name: "ts negative", in: `{"v":1,"ts":-1,"uptime_s":1}`, err: "ts must be a Unix time"},
		{name: "session_id too long", in: `{"v":1,"session_id":"` + strings.Repeat("s", 65) + `"}`, err: "session_id is 65 bytes"},
		{name: "session_id control", in: `{"v":1,"session_id":"s\n1"}`, err: "session_id may only contain visible ASCII"},
		{name: "allow_ver negative", in: `{"v":1,"allow_ver":-1}`, err: "allow_ver must not be negative"},
		{name: "allow_ver string", in: `{"v":1,"allow_ver":"42"}`, err: "allow_ver must be an integer"},
	}...)
	runDecodeCases(t, DecodeHeartbeat, cases)
}

func TestDecodeTap(t *testing.T) {
	const ok = `"msg_id":"m-1","ts":1767225600,"uid":"04A2B3C4D5E6F7"`
	cases := append(envelopeCases[Tap](ok, MaxPayload), []dcase[Tap]{
		{name: "online", in: `{"v":1,"msg_id":"m-000123","ts":1767225600,"uid":"04A2B3C4D5E6F7","offline":false}`,
			want: &Tap{V: 1, MsgID: "m-000123", TS: 1767225600, UID: "04A2B3C4D5E6F7"}},
		{name: "offline replay", in: `{"v":1,"msg_id":"m-000124","ts":1767225600,"uid":"04A2B3C4D5E6F7","offline":true}`,
			want: &Tap{V: 1, MsgID: "m-000124", TS: 1767225600, UID: "04A2B3C4D5E6F7", Offline: true}},
		{name: "offline absent is false", in: `{"v":1,` + ok + `}`, want: &Tap{V: 1, MsgID: "m-1", TS: 1767225600, UID: "04A2B3C4D5E6F7"}},
		{name: "uid normalised", in: `{"v":1,"msg_id":"m-1","ts":1,"uid":"04:a2:b3:c4"}`, want: &Tap{V: 1, MsgID: "m-1", TS: 1, UID: "04A2B3C4"}},
		{name: "uid with spaces and dashes", in: `{"v":1,"msg_id":"m-1","ts":1,"uid":"04 a2-b3 c4"}`, want: &Tap{V: 1, MsgID: "m-1", TS: 1, UID: "04A2B3C4"}},
		{name: "uid 32 bytes", in: `{"v":1,"msg_id":"m-1","ts":1,"uid":"` + strings.Repeat("AB", 32) + `"}`},
		{name: "msg_id 64 visible ascii", in: `{"v":1,"msg_id":"` + strings.Repeat("~", 64) + `","ts":1,"uid":"0102"}`},
		{name: "msg_id uuid", in: `{"v":1,"msg_id":"0b8e5f8e-4f1c-4c55-9b1a-2f0e8d3c6a71","ts":1,"uid":"0102"}`},
		{name: "msg_id missing", in: `{"v":1,"ts":1,"uid":"0102"}`, err: "tap: msg_id is required"},
		{name: "msg_id empty", in: `{"v":1,"msg_id":"","ts":1,"uid":"0102"}`, err: "msg_id is required"},
		{name: "msg_id too long", in: `{"v":1,"msg_id":"` + strings.Repeat("m", 65) + `","ts":1,"uid":"0102"}`, err: "msg_id is 65 bytes, at most 64 allowed"},
		{name: "msg_id with space", in: `{"v":1,"msg_id":"m 1","ts":1,"uid":"0102"}`, err: "msg_id may only contain visible ASCII"},
		{name: "msg_id non-ascii", in: `{"v":1,"msg_id":"m-é","ts":1,"uid":"0102"}`, err: "msg_id may only contain visible ASCII"},
		{name: "msg_id control escape", in: `{"v":1,"msg_id":"m\u0000","ts":1,"uid":"0102"}`, err: "msg_id may only contain visible ASCII"},
		{name: "msg_id number", in: `{"v":1,"msg_id":123,"ts":1,"uid":"0102"}`, err: "msg_id must be a string, got JSON number"},
		{name: "ts missing", in: `{"v":1,"msg_id":"m-1","uid":"0102"}`, err: "tap: ts is required"},
		{name: "ts zero", in: `{"v":1,"msg_id":"m-1","ts":0,"uid":"0102"}`, err: "ts is required"},
		{name: "ts negative", in: `{"v":1,"msg_id":"m-1","ts":-5,"uid":"0102"}`, err: "ts must be a Unix time"},
		{name: "ts after year 9999", in: `{"v":1,"msg_id":"m-1","ts":253402300800,"uid":"0102"}`, err: "ts must be a Unix time"},
		{name: "ts milliseconds float", in: `{"v":1,"msg_id":"m-1","ts":1767225600.123,"uid":"0102"}`, err: "ts must be an integer"},
		{name: "uid missing", in: `{"v":1,"msg_id":"m-1","ts":1}`, err: "tap: uid is required"},
		{name: "uid empty", in: `{"v":1,"msg_id":"m-1","ts":1,"uid":""}`, err: "uid is required"},
		{name: "uid not hex", in: `{"v":1,"msg_id":"m-1","ts":1,"uid":"04G2"}`, err: "uid: badge uid must be hexadecimal"},
		{name: "uid odd digits", in: `{"v":1,"msg_id":"m-1","ts":1,"uid":"04A"}`, err: "uid: badge uid must be 2 to 32 bytes"},
		{name: "uid too short", in: `{"v":1,"msg_id":"m-1","ts":1,"uid":"04"}`, err: "2 to 32 bytes"},
		{name: "uid too long", in: `{"v":1,"msg_id":"m-1","ts":1,"uid":"` + strings.Repeat("AB", 33) + `"}`, err: "2 to 32 bytes of hexadecimal, got 66 digits"},
		{name: "uid only separators", in: `{"v":1,"msg_id":"m-1","ts":1,"uid":"::"}`, err: "2 to 32 bytes"},
		{name: "uid number", in: `{"v":1,"msg_id":"m-1","ts":1,"uid":4660}`, err: "uid must be a string, got JSON number"},
		{name: "offline string", in: `{"v":1,` + ok + `,"offline":"false"}`, err: "offline must be true or false, got JSON string"},
		{name: "offline number", in: `{"v":1,` + ok + `,"offline":0}`, err: "offline must be true or false"},
		// The device's own decisions, replayed.
		{name: "replay granted and ended", in: `{"v":1,` + ok + `,"offline":true,"result":"granted","reason":"tap_out","session_id":"off-m-1","until":1767229200,"ended":1767227000}`,
			want: &Tap{V: 1, MsgID: "m-1", TS: 1767225600, UID: "04A2B3C4D5E6F7", Offline: true, Result: TapGranted, Reason: "tap_out", SessionID: "off-m-1", Until: 1767229200, Ended: 1767227000}},
		{name: "replay granted running", in: `{"v":1,` + ok + `,"offline":true,"result":"granted","session_id":"off-m-1","until":1767229200}`},
		{name: "replay denied", in: `{"v":1,` + ok + `,"offline":true,"result":"denied","reason":"offline_not_allowed"}`},
		{name: "replay tap-out", in: `{"v":1,` + ok + `,"offline":true,"result":"tap_out","session_id":"311"}`},
		{name: "result on a live tap", in: `{"v":1,` + ok + `,"result":"granted","session_id":"off-m-1","until":1767229200}`, err: "result is only sent on replayed taps"},
		{name: "result unknown", in: `{"v":1,` + ok + `,"offline":true,"result":"maybe"}`, err: `result "maybe" is not granted, denied or tap_out`},
		{name: "granted without until", in: `{"v":1,` + ok + `,"offline":true,"result":"granted","session_id":"off-m-1"}`, err: "a granted tap needs until"},
		{name: "granted until before ts", in: `{"v":1,` + ok + `,"offline":true,"result":"granted","session_id":"off-m-1","until":1767225599}`, err: "a granted tap needs until, at or after ts"},
		{name: "granted ended before ts", in: `{"v":1,` + ok + `,"offline":true,"result":"granted","session_id":"off-m-1","until":1767229200,"ended":1767225000}`, err: "ended is before ts"},
		{name: "granted without session", in: `{"v":1,` + ok + `,"offline":true,"result":"granted","until":1767229200}`, err: "session_id is required"},
		{name: "denied with until", in: `{"v":1,` + ok + `,"offline":true,"result":"denied","until":1767229200}`, err: "until and ended belong to a granted tap"},
		{name: "tap-out without session", in: `{"v":1,` + ok + `,"offline":true,"result":"tap_out"}`, err: "session_id is required"},
		{name: "decision fields without result", in: `{"v":1,` + ok + `,"offline":true,"reason":"x"}`, err: "they need a result"},
		{name: "reason with a control character", in: `{"v":1,` + ok + `,"offline":true,"result":"denied","reason":"a\u0007"}`, err: "reason"},
	}...)
	runDecodeCases(t, DecodeTap, cases)
}

func TestDecodeCommand(t *testing.T) {
	cases := append(envelopeCases[Command](`"cmd_id":"c-1","seq":1,"op":"lock"`, MaxPayload), []dcase[Command]{
		{name: "unlock", in: `{"v":1,"cmd_id":"c-9f2","seq":1207,"op":"unlock","session_id":"s-311","until":1767232800}`,
			want: &Command{V: 1, CmdID: "c-9f2", Seq: 1207, Op: OpUnlock, SessionID: "s-311", Until: 1767232800}},
		{name: "unlock with message", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"unlock","session_id":"s-1","until":1,"message":"Bonjour Ada, jusqu'à 14:00"}`},
		{name: "lock minimal", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"lock"}`, want: &Command{V: 1, CmdID: "c-1", Seq: 1, Op: OpLock}},
		{name: "lock with end reason", in: `{"v":1,"cmd_id":"c-1","seq":2,"op":"lock","session_id":"s-1","reason":"tap_out","message":"Au revoir"}`},
		{name: "warn", in: `{"v":1,"cmd_id":"c-2","seq":3,"op":"warn","session_id":"s-1","until":1767232800,"reason":"session_ending","message":"Fin dans 5 min"}`},
		{name: "deny", in: `{"v":1,"cmd_id":"c-3","seq":4,"op":"deny","reason":"training_required","message":"Formation requise : Découpe laser"}`,
			want: &Command{V: 1, CmdID: "c-3", Seq: 4, Op: OpDeny, Reason: ReasonTrainingRequired, Message: "Formation requise : Découpe laser"}},
		{name: "deny unknown future reason", in: `{"v":1,"cmd_id":"c-3","seq":4,"op":"deny","reason":"some_future_code"}`},
		{name: "status", in: `{"v":1,"cmd_id":"c-4","seq":5,"op":"status"}`},
		{name: "lock answering a tap", in: `{"v":1,"cmd_id":"c-1","seq":2,"op":"lock","session_id":"s-1","reason":"tap_out","tap_id":"0a1b2c3d4e5f6071"}`,
			want: &Command{V: 1, CmdID: "c-1", Seq: 2, Op: OpLock, SessionID: "s-1", Reason: "tap_out", TapID: "0a1b2c3d4e5f6071"}},
		{name: "tap_id with space", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"deny","reason":"in_use","tap_id":"a b"}`, err: "tap_id may only contain visible ASCII"},
		{name: "tap_id too long", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"deny","reason":"in_use","tap_id":"` + strings.Repeat("t", 65) + `"}`, err: "tap_id is 65 bytes"},
		{name: "seq max uint64", in: `{"v":1,"cmd_id":"c-4","seq":18446744073709551615,"op":"status"}`},
		{name: "message 200 bytes", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"deny","reason":"in_use","message":"` + strings.Repeat("é", 100) + `"}`},
		{name: "cmd_id missing", in: `{"v":1,"seq":1,"op":"lock"}`, err: "command: cmd_id is required"},
		{name: "cmd_id too long", in: `{"v":1,"cmd_id":"` + strings.Repeat("c", 65) + `","seq":1,"op":"lock"}`, err: "cmd_id is 65 bytes"},
		{name: "cmd_id with space", in: `{"v":1,"cmd_id":"c 1","seq":1,"op":"lock"}`, err: "cmd_id may only contain visible ASCII"},
		{name: "seq missing", in: `{"v":1,"cmd_id":"c-1","op":"lock"}`, err: "seq is required and must be positive"},
		{name: "seq zero", in: `{"v":1,"cmd_id":"c-1","seq":0,"op":"lock"}`, err: "seq is required"},
		{name: "seq negative", in: `{"v":1,"cmd_id":"c-1","seq":-1,"op":"lock"}`, err: "seq must be a non-negative integer, got JSON number -1"},
		{name: "seq float", in: `{"v":1,"cmd_id":"c-1","seq":1.5,"op":"lock"}`, err: "seq must be a non-negative integer"},
		{name: "seq overflow", in: `{"v":1,"cmd_id":"c-1","seq":18446744073709551616,"op":"lock"}`, err: "seq must be a non-negative integer"},
		{name: "seq string", in: `{"v":1,"cmd_id":"c-1","seq":"1","op":"lock"}`, err: "seq must be a non-negative integer, got JSON string"},
		{name: "op missing", in: `{"v":1,"cmd_id":"c-1","seq":1}`, err: "op is required"},
		{name: "op unknown", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"open"}`, err: `op must be unlock, lock, warn, deny or status, got "open"`},
		{name: "op upper case", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"UNLOCK","session_id":"s","until":1}`, err: "op must be"},
		{name: "unlock without session_id", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"unlock","until":1767232800}`, err: "session_id is required"},
		{name: "unlock without until", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"unlock","session_id":"s-1"}`, err: "until is required"},
		{name: "unlock until zero", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"unlock","session_id":"s-1","until":0}`, err: "until is required"},
		{name: "unlock until negative", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"unlock","session_id":"s-1","until":-1}`, err: "until must be a Unix time"},
		{name: "until after year 9999", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"warn","reason":"session_ending","until":253402300800}`, err: "until must be a Unix time"},
		{name: "session_id too long", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"unlock","session_id":"` + strings.Repeat("s", 65) + `","until":1}`, err: "session_id is 65 bytes"},
		{name: "deny without reason", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"deny","message":"Non"}`, err: "deny needs a reason code"},
		{name: "warn without reason", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"warn"}`, err: "warn needs a reason code"},
		{name: "reason too long", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"deny","reason":"` + strings.Repeat("r", 65) + `"}`, err: "reason is 65 bytes, at most 64 allowed"},
		{name: "reason control", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"deny","reason":"in_use\t"}`, err: "reason must not contain control characters"},
		{name: "message too long", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"deny","reason":"in_use","message":"` + strings.Repeat("m", 201) + `"}`, err: "message is 201 bytes, at most 200 allowed"},
		{name: "message control", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"deny","reason":"in_use","message":"a\u001b[2Jb"}`, err: "message must not contain control characters"},
		{name: "message C1 control", in: `{"v":1,"cmd_id":"c-1","seq":1,"op":"deny","reason":"in_use","message":"a\u0085b"}`, err: "message must not contain control characters"},
	}...)
	runDecodeCases(t, DecodeCommand, cases)
}

func TestDecodeAck(t *testing.T) {
	cases := append(envelopeCases[Ack](`"cmd_id":"c-1","seq":1,"result":"ok"`, MaxPayload), []dcase[Ack]{
		{name: "ok", in: `{"v":1,"cmd_id":"c-9f2","seq":1207,"result":"ok","relay":"on"}`,
			want: &Ack{V: 1, CmdID: "c-9f2", Seq: 1207, Result: ResultOK, Relay: RelayOn}},
		{name: "stale", in: `{"v":1,"cmd_id":"c-9f2","seq":1207,"result":"stale","relay":"off","reason":"seq 1207 <= 1210"}`},
		{name: "error", in: `{"v":1,"cmd_id":"c-9f2","seq":1207,"result":"error","relay":"off","reason":"relay did not switch"}`},
		{name: "no relay", in: `{"v":1,"cmd_id":"c-1","seq":1,"result":"ok"}`, want: &Ack{V: 1, CmdID: "c-1", Seq: 1, Result: ResultOK}},
		{name: "cmd_id missing", in: `{"v":1,"seq":1,"result":"ok"}`, err: "ack: cmd_id is required"},
		{name: "cmd_id too long", in: `{"v":1,"cmd_id":"` + strings.Repeat("c", 65) + `","seq":1,"result":"ok"}`, err: "cmd_id is 65 bytes"},
		{name: "seq missing", in: `{"v":1,"cmd_id":"c-1","result":"ok"}`, err: "seq is required"},
		{name: "seq zero", in: `{"v":1,"cmd_id":"c-1","seq":0,"result":"ok"}`, err: "seq is required"},
		{name: "seq negative", in: `{"v":1,"cmd_id":"c-1","seq":-3,"result":"ok"}`, err: "seq must be a non-negative integer"},
		{name: "result missing", in: `{"v":1,"cmd_id":"c-1","seq":1}`, err: "result is required"},
		{name: "result unknown", in: `{"v":1,"cmd_id":"c-1","seq":1,"result":"done"}`, err: `result must be ok, stale or error, got "done"`},
		{name: "result bool", in: `{"v":1,"cmd_id":"c-1","seq":1,"result":true}`, err: "result must be a string"},
		{name: "relay unknown", in: `{"v":1,"cmd_id":"c-1","seq":1,"result":"ok","relay":"closed"}`, err: `relay must be on or off, got "closed"`},
		{name: "reason too long", in: `{"v":1,"cmd_id":"c-1","seq":1,"result":"error","reason":"` + strings.Repeat("r", 65) + `"}`, err: "reason is 65 bytes"},
	}...)
	runDecodeCases(t, DecodeAck, cases)
}

func TestDecodeState(t *testing.T) {
	cases := append(envelopeCases[State](`"relay":"off","seq":0`, MaxPayload), []dcase[State]{
		{name: "on", in: `{"v":1,"relay":"on","session_id":"s-311","since":1767225600,"power_w":812.5,"seq":1207}`,
			want: &State{V: 1, Relay: RelayOn, SessionID: "s-311", Since: 1767225600, PowerW: ptr(812.5), Seq: 1207}},
		{name: "off minimal", in: `{"v":1,"relay":"off"}`, want: &State{V: 1, Relay: RelayOff}},
		{name: "off after boot", in: `{"v":1,"relay":"off","since":1767225600,"seq":0}`},
		{name: "relay missing", in: `{"v":1,"since":1,"seq":1}`, err: "state: relay is required"},
		{name: "relay empty", in: `{"v":1,"relay":""}`, err: "relay is required"},
		{name: "relay numeric", in: `{"v":1,"relay":"1"}`, err: `relay must be on or off, got "1"`},
		{name: "relay bool", in: `{"v":1,"relay":true}`, err: "relay must be a string"},
		{name: "power negative", in: `{"v":1,"relay":"on","power_w":-1}`, err: "power_w must be a finite number"},
		{name: "since negative", in: `{"v":1,"relay":"on","since":-1}`, err: "since must be a Unix time"},
		{name: "session_id too long", in: `{"v":1,"relay":"on","session_id":"` + strings.Repeat("s", 65) + `"}`, err: "session_id is 65 bytes"},
		{name: "seq negative", in: `{"v":1,"relay":"on","seq":-1}`, err: "seq must be a non-negative integer"},
	}...)
	runDecodeCases(t, DecodeState, cases)
}

func allowlistJSON(n int, tier string, until int64) string {
	var b strings.Builder
	b.WriteString(`{"v":1,"ver":7,"issued":1767225600,"entries":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"h":"%064x","tier":"%s","until":%d}`, i, tier, until)
	}
	b.WriteString(`]}`)
	return b.String()
}

func TestDecodeAllowlist(t *testing.T) {
	h, h2 := hexHash('a'), hexHash('0')
	big := allowlistJSON(MaxAllowlistEntries, TierOffline, MaxTime)
	cases := append(envelopeCases[Allowlist](`"ver":1,"issued":1,"entries":[]`, MaxAllowlistPayload), []dcase[Allowlist]{
		{name: "two tiers", in: `{"v":1,"ver":42,"issued":1767225600,"entries":[{"h":"` + h + `","tier":"offline","until":1767312000},{"h":"` + h2 + `","tier":"admin","until":0}]}`,
			want: &Allowlist{V: 1, Ver: 42, Issued: 1767225600, Entries: []AllowEntry{{H: h, Tier: TierOffline, Until: 1767312000}, {H: h2, Tier: TierAdmin}}}},
		{name: "empty", in: `{"v":1,"ver":1,"issued":1,"entries":[]}`, want: &Allowlist{V: 1, Ver: 1, Issued: 1, Entries: []AllowEntry{}}},
		{name: "entries missing is empty", in: `{"v":1,"ver":0,"issued":0}`, want: &Allowlist{V: 1, Entries: []AllowEntry{}}},
		{name: "entries null is empty", in: `{"v":1,"ver":3,"entries":null}`, want: &Allowlist{V: 1, Ver: 3, Entries: []AllowEntry{}}},
		{name: "larger than MaxPayload", in: allowlistJSON(60, TierAdmin, 0)},
		{name: "maximal list fits", in: big},
		{name: "entry with unknown field", in: `{"v":1,"ver":1,"entries":[{"h":"` + h + `","tier":"admin","until":0,"name":"x"}]}`},
		{name: "too many entries", in: allowlistJSON(MaxAllowlistEntries+1, TierAdmin, 0), err: "10001 entries, at most 10000 allowed"},
		{name: "over 1.25 MiB", in: big[:len(big)-2] + strings.Repeat(" ", MaxAllowlistPayload-len(big)+1) + "]}", err: "at most 1310720 allowed"},
		{name: "ver negative", in: `{"v":1,"ver":-1,"entries":[]}`, err: "ver must not be negative"},
		{name: "key id", in: `{"v":1,"ver":1,"kid":3,"entries":[]}`, want: &Allowlist{V: 1, Ver: 1, Kid: 3, Entries: []AllowEntry{}}},
		{name: "key id negative", in: `{"v":1,"ver":1,"kid":-1,"entries":[]}`, err: "kid must not be negative"},
		{name: "ver string", in: `{"v":1,"ver":"42","entries":[]}`, err: "ver must be an integer"},
		{name: "issued negative", in: `{"v":1,"ver":1,"issued":-1,"entries":[]}`, err: "issued must be a Unix time"},
		{name: "entries object", in: `{"v":1,"ver":1,"entries":{}}`, err: "entries must be an array, got JSON object"},
		{name: "entry not object", in: `{"v":1,"ver":1,"entries":["` + h + `"]}`, err: "must be an object, got JSON string"},
		{name: "h upper case", in: `{"v":1,"ver":1,"entries":[{"h":"` + hexHash('A') + `","tier":"admin"}]}`, err: "entries[0].h must be 64 lowercase hex digits"},
		{name: "h short", in: `{"v":1,"ver":1,"entries":[{"h":"` + h[:63] + `","tier":"admin"}]}`, err: "entries[0].h must be 64"},
		{name: "h long", in: `{"v":1,"ver":1,"entries":[{"h":"` + h + `0","tier":"admin"}]}`, err: "entries[0].h must be 64"},
		{name: "h not hex", in: `{"v":1,"ver":1,"entries":[{"h":"` + hexHash('g') + `","tier":"admin"}]}`, err: "entries[0].h"},
		{name: "h missing in second", in: `{"v":1,"ver":1,"entries":[{"h":"` + h + `","tier":"admin"},{"tier":"admin"}]}`, err: "entries[1].h must be 64"},
		{name: "h number", in: `{"v":1,"ver":1,"entries":[{"h":12,"tier":"admin"}]}`, err: "h must be a string"},
		{name: "tier unknown", in: `{"v":1,"ver":1,"entries":[{"h":"` + h + `","tier":"staff"}]}`, err: `entries[0].tier must be offline or admin, got "staff"`},
		{name: "tier missing", in: `{"v":1,"ver":1,"entries":[{"h":"` + h + `"}]}`, err: "entries[0].tier must be offline or admin"},
		{name: "until negative", in: `{"v":1,"ver":1,"entries":[{"h":"` + h + `","tier":"offline","until":-1}]}`, err: "entries[0].until must be a Unix time"},
		{name: "until after year 9999", in: `{"v":1,"ver":1,"entries":[{"h":"` + h + `","tier":"offline","until":253402300800}]}`, err: "entries[0].until"},
	}...)
	runDecodeCases(t, DecodeAllowlist, cases)
}

func TestDecodeServerStatus(t *testing.T) {
	cases := append(envelopeCases[ServerStatus](`"online":true`, MaxPayload), []dcase[ServerStatus]{
		{name: "online", in: `{"v":1,"online":true}`, want: &ServerStatus{V: 1, Online: true}},
		{name: "offline", in: `{"v":1,"online":false}`, want: &ServerStatus{V: 1}},
		{name: "online missing", in: `{"v":1}`, err: "server status: online is required"},
		{name: "online number", in: `{"v":1,"online":0}`, err: "online must be true or false"},
	}...)
	runDecodeCases(t, DecodeServerStatus, cases)
}

func TestJSONPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ts", "ts"},
		{"Tap.ts", "ts"},
		{"entries.h", "entries.h"},
		{"entries.0.h", "entries[0].h"},
		{"entries.12.until", "entries[12].until"},
		{"a.1.2.b", "a[1][2].b"},
		{"Envelope.Tap", "Envelope.Tap"},
		{"", ""},
	} {
		if got := jsonPath(tc.in); got != tc.want {
			t.Errorf("jsonPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDecodeVersionFirst(t *testing.T) {
	// A payload of a later version is reported as such even when its fields
	// no longer match version 1.
	_, err := DecodeTap([]byte(`{"v":2,"msg_id":7,"ts":"now","uid":["04"]}`))
	wantInvalid(t, err, "unsupported protocol version v=2")
	_, err = DecodeAllowlist([]byte(`{"v":3,"entries":{"a":1}}`))
	wantInvalid(t, err, "unsupported protocol version v=3")
}

func TestDecodeFieldPath(t *testing.T) {
	// Messages name the JSON field, not the Go type around it.
	_, err := DecodeAllowlist([]byte(`{"v":1,"ver":1,"entries":[{"h":12}]}`))
	wantInvalid(t, err, "allowlist: entries")
	// encoding/json names the array index from Go 1.27 on.
	var fe *fablab.Error
	if errors.As(err, &fe) && fe.Message != "allowlist: entries[0].h must be a string, got JSON number" &&
		fe.Message != "allowlist: entries.h must be a string, got JSON number" {
		t.Errorf("message %q, want allowlist: entries[0].h (or entries.h) must be a string, got JSON number", fe.Message)
	}
	_, err = DecodeStatus([]byte(`{"v":1,"online":true,"ts":"1"}`))
	wantInvalid(t, err, "status: ts must be an integer, got JSON string")
}
