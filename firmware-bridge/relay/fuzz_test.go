package relay

import (
	"bytes"
	"encoding/json"
	"math"
	"path/filepath"
	"strconv"
	"testing"
)

// Every decoder of what a device publishes is fuzzed: none may panic, an
// error must come with nothing decoded (a bad payload never reads as "on"),
// and what is decoded must survive a round trip or agree with itself.

// addFixtures seeds f with the vendor fixtures matching pattern, each
// with the extra arguments of the target.
func addFixtures(f *testing.F, pattern string, extra ...any) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures for %s (%v)", pattern, err)
	}
	for _, file := range files {
		f.Add(append([]any{fixture(f, file[len("testdata/"):])}, extra...)...)
	}
}

func FuzzParseShellyGen1State(f *testing.F) {
	addFixtures(f, "shellygen1/state_*")
	f.Fuzz(func(t *testing.T, payload []byte) {
		on, fault, err := parseShellyGen1State(payload)
		if err != nil {
			if on || fault != "" {
				t.Fatalf("error %v came with on=%v fault=%q", err, on, fault)
			}
			return
		}
		text := string(bytes.TrimSpace(payload))
		switch {
		case fault != "" && (on || text != fault):
			t.Fatalf("%q: fault %q with on=%v", payload, fault, on)
		case fault == "" && text != onOff(on):
			t.Fatalf("%q read as on=%v", payload, on)
		}
	})
}

func FuzzParseShellyGen1Power(f *testing.F) {
	addFixtures(f, "shellygen1/power_*")
	f.Add([]byte("1e308"))
	f.Add([]byte("-0"))
	f.Add([]byte("0x1p4"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		w, err := parseShellyGen1Power(payload)
		if err != nil {
			if w != 0 {
				t.Fatalf("error %v came with %v W", err, w)
			}
			return
		}
		if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 || math.Signbit(w) {
			t.Fatalf("%q read as %v W", payload, w)
		}
		again, err := parseShellyGen1Power([]byte(strconv.FormatFloat(w, 'g', -1, 64)))
		if err != nil || again != w {
			t.Fatalf("round trip of %v W: %v, %v", w, again, err)
		}
	})
}

func FuzzParseShellyOnline(f *testing.F) {
	addFixtures(f, "shellygen1/online_*")
	f.Fuzz(func(t *testing.T, payload []byte) {
		online, err := parseShellyOnline(payload)
		if err != nil {
			if online {
				t.Fatalf("error %v came with online", err)
			}
			return
		}
		if string(bytes.TrimSpace(payload)) != strconv.FormatBool(online) {
			t.Fatalf("%q read as online=%v", payload, online)
		}
	})
}

func FuzzParseShellyNotification(f *testing.F) {
	addFixtures(f, "shellygen2/notify_*", uint8(0))
	addFixtures(f, "shellygen2/notify_status_other_switch.json", uint8(1))
	f.Fuzz(func(t *testing.T, payload []byte, id uint8) {
		switchID := int(id)
		n, err := parseShellyNotification(payload, switchID)
		if err != nil {
			if n.Switch != nil || n.Full || n.Src != "" {
				t.Fatalf("error %v came with %+v", err, n)
			}
			return
		}
		if n.Full && n.Switch == nil {
			t.Fatalf("a full status without the switch was accepted")
		}
		if n.Switch != nil {
			checkSwitchStatus(t, *n.Switch, switchID)
		}
	})
}

func FuzzParseShellySwitchStatus(f *testing.F) {
	f.Add([]byte(`{"id":0,"output":true,"apower":12.5}`), uint8(0))
	f.Add([]byte(`{"apower":0}`), uint8(0))
	f.Add([]byte(`{"id":1,"output":false,"errors":["overpower"]}`), uint8(1))
	f.Add([]byte(`{"output":"on"}`), uint8(0))
	f.Add([]byte(`null`), uint8(0))
	f.Fuzz(func(t *testing.T, payload []byte, id uint8) {
		st, err := parseShellySwitchStatus(payload, int(id))
		if err != nil {
			if fmtStatus(st) != "{}" {
				t.Fatalf("error %v came with %s", err, fmtStatus(st))
			}
			return
		}
		checkSwitchStatus(t, st, int(id))
	})
}

// checkSwitchStatus checks a decoded switch status: its values are sane,
// it survives a round trip, and merging it follows the documented rule
// (what it carries replaces, the rest stays).
func checkSwitchStatus(t *testing.T, st shellySwitchStatus, switchID int) {
	t.Helper()
	if st.ID != nil && *st.ID != switchID {
		t.Fatalf("status of switch %d taken for switch %d", *st.ID, switchID)
	}
	if st.APower != nil && (*st.APower < 0 || math.IsNaN(*st.APower) || math.IsInf(*st.APower, 0)) {
		t.Fatalf("apower %v", *st.APower)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	again, err := parseShellySwitchStatus(b, switchID)
	if err != nil || fmtStatus(again) != fmtStatus(st) {
		t.Fatalf("round trip of %s: %s, %v", fmtStatus(st), fmtStatus(again), err)
	}

	base := shellySwitchStatus{ID: ptr(switchID), Output: ptr(true), APower: ptr(1.0), Errors: &[]string{}}
	m := mergeShellySwitch(base, st)
	pick := func(upd, old string) string {
		if upd != "" {
			return upd
		}
		return old
	}
	for _, field := range []struct {
		name           string
		got, upd, base string
	}{
		{"output", fmtBool(m.Output), fmtBool(st.Output), fmtBool(base.Output)},
		{"apower", fmtFloat(m.APower), fmtFloat(st.APower), fmtFloat(base.APower)},
	} {
		if field.got != pick(field.upd, field.base) {
			t.Fatalf("merge of %s onto %s: %s is %s", fmtStatus(st), fmtStatus(base), field.name, field.got)
		}
	}
	if fmtStatus(mergeShellySwitch(m, st)) != fmtStatus(m) {
		t.Fatalf("merging %s twice changed the result", fmtStatus(st))
	}
	if fmtStatus(mergeShellySwitch(st, shellySwitchStatus{})) != fmtStatus(st) {
		t.Fatalf("merging nothing onto %s changed it", fmtStatus(st))
	}
}

func fmtBool(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}

func fmtFloat(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}

func FuzzParseShellyReply(f *testing.F) {
	addFixtures(f, "shellygen2/reply_*")
	f.Fuzz(func(t *testing.T, payload []byte) {
		rep, err := parseShellyReply(payload)
		if err != nil {
			if rep.IDOK || rep.Err != nil || rep.Src != "" {
				t.Fatalf("error %v came with %+v", err, rep)
			}
			return
		}
		if rep.Src == "" || (rep.Err == nil && len(rep.Result) == 0) {
			t.Fatalf("%q accepted without src or outcome: %+v", payload, rep)
		}
		if len(rep.Result) > 0 && !json.Valid(rep.Result) {
			t.Fatalf("result %q is not JSON", rep.Result)
		}
		if !rep.IDOK {
			return
		}
		frame := map[string]any{"id": rep.ID, "src": rep.Src, "dst": rep.Dst}
		if rep.Err != nil {
			frame["error"] = map[string]any{"code": rep.Err.Code, "message": rep.Err.Message}
		} else {
			frame["result"] = rep.Result
		}
		b, err := json.Marshal(frame)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseShellyReply(b)
		if err != nil || again.ID != rep.ID || !again.IDOK || again.Src != rep.Src || again.Dst != rep.Dst ||
			(again.Err == nil) != (rep.Err == nil) || (rep.Err != nil && *again.Err != *rep.Err) {
			t.Fatalf("round trip of %+v: %+v, %v", rep, again, err)
		}
	})
}

func FuzzParseTasmotaSensor(f *testing.F) {
	addFixtures(f, "tasmota/sensor_*", uint8(0))
	addFixtures(f, "tasmota/sensor_energy_array.json", uint8(2))
	f.Fuzz(func(t *testing.T, payload []byte, ch uint8) {
		channel := int(ch % (tasmotaMaxRelay + 2))
		w, ok, err := parseTasmotaSensor(payload, channel)
		if err != nil || !ok {
			if ok || w != 0 {
				t.Fatalf("channel %d: err %v came with %v W (ok %v)", channel, err, w, ok)
			}
		} else if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 || math.Signbit(w) {
			t.Fatalf("channel %d: read %v W", channel, w)
		}
		// Channels 0 and 1 both name the first element (or the scalar).
		w0, ok0, err0 := parseTasmotaSensor(payload, 0)
		w1, ok1, err1 := parseTasmotaSensor(payload, 1)
		if w0 != w1 || ok0 != ok1 || (err0 == nil) != (err1 == nil) {
			t.Fatalf("channels 0 and 1 disagree: %v %v %v / %v %v %v", w0, ok0, err0, w1, ok1, err1)
		}
	})
}

func FuzzParseTasmotaResult(f *testing.F) {
	addFixtures(f, "tasmota/result_*", uint8(0))
	addFixtures(f, "tasmota/state_*", uint8(2))
	f.Fuzz(func(t *testing.T, payload []byte, r uint8) {
		relay := int(r % (tasmotaMaxRelay + 1))
		on, ok, err := parseTasmotaResult(payload, relay)
		if err != nil || !ok {
			if on || ok && err != nil {
				t.Fatalf("relay %d: err %v came with on=%v ok=%v", relay, err, on, ok)
			}
			return
		}
		key := tasmotaPowerKeys(relay)[0]
		again, ok, err := parseTasmotaResult([]byte(`{"`+key+`":"`+map[bool]string{true: "ON", false: "OFF"}[on]+`"}`), relay)
		if err != nil || !ok || again != on {
			t.Fatalf("round trip of on=%v: %v %v %v", on, again, ok, err)
		}
	})
}

func FuzzParseTasmotaPower(f *testing.F) {
	addFixtures(f, "tasmota/power_*")
	f.Fuzz(func(t *testing.T, payload []byte) {
		on, err := parseTasmotaPower(payload)
		if err != nil {
			if on {
				t.Fatalf("error %v came with on", err)
			}
			return
		}
		if want := map[bool]string{true: "ON", false: "OFF"}[on]; string(bytes.TrimSpace(payload)) != want {
			t.Fatalf("%q read as on=%v", payload, on)
		}
	})
}

func FuzzParseTasmotaLWT(f *testing.F) {
	addFixtures(f, "tasmota/lwt_*")
	f.Fuzz(func(t *testing.T, payload []byte) {
		online, err := parseTasmotaLWT(payload)
		if err != nil {
			if online {
				t.Fatalf("error %v came with online", err)
			}
			return
		}
		if want := map[bool]string{true: "Online", false: "Offline"}[online]; string(bytes.TrimSpace(payload)) != want {
			t.Fatalf("%q read as online=%v", payload, online)
		}
	})
}
