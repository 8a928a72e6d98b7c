package relay

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fixture reads testdata/<name>: a vendor payload, byte for byte as the
// device publishes it.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

func TestParseShellyGen1State(t *testing.T) {
	tests := []struct {
		file      string
		wantOn    bool
		wantFault string
		wantErr   bool
	}{
		{file: "state_on.txt", wantOn: true},
		{file: "state_off.txt", wantOn: false},
		{file: "state_overpower.txt", wantOn: false, wantFault: "overpower"},
		{file: "state_uppercase_on.txt", wantErr: true},
		{file: "state_empty.txt", wantErr: true},
		{file: "state_json_from_other_firmware.txt", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			on, fault, err := parseShellyGen1State(fixture(t, "shellygen1/"+tt.file))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil {
				if on || fault != "" {
					t.Errorf("an error came with on=%v fault=%q: a bad state must read as nothing", on, fault)
				}
				return
			}
			if on != tt.wantOn || fault != tt.wantFault {
				t.Errorf("got on=%v fault=%q, want on=%v fault=%q", on, fault, tt.wantOn, tt.wantFault)
			}
		})
	}
}

func TestParseShellyGen1Power(t *testing.T) {
	tests := []struct {
		file    string
		want    float64
		wantErr bool
	}{
		{file: "power_watts.txt", want: 42.57},
		{file: "power_zero.txt", want: 0},
		{file: "power_not_a_number.txt", wantErr: true},
		{file: "power_negative.txt", wantErr: true},
		{file: "power_nan.txt", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			w, err := parseShellyGen1Power(fixture(t, "shellygen1/"+tt.file))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if err == nil && w != tt.want {
				t.Errorf("got %v W, want %v W", w, tt.want)
			}
		})
	}
}

func TestParseShellyOnline(t *testing.T) {
	tests := []struct {
		file    string
		want    bool
		wantErr bool
	}{
		{file: "online_true.txt", want: true},
		{file: "online_false.txt", want: false},
		{file: "online_numeric.txt", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseShellyOnline(fixture(t, "shellygen1/"+tt.file))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseShellyNotification(t *testing.T) {
	tests := []struct {
		file     string
		switchID int
		wantFull bool
		want     *shellySwitchStatus // nil: nothing about the switch
		wantErr  bool
	}{
		{file: "notify_status_partial_apower.json", want: &shellySwitchStatus{ID: ptr(0), APower: ptr(12.5)}},
		{file: "notify_status_partial_output_button.json", want: &shellySwitchStatus{ID: ptr(0), Output: ptr(true)}},
		{file: "notify_status_timer_off.json", want: &shellySwitchStatus{ID: ptr(0), Output: ptr(false)}},
		{file: "notify_status_other_component.json"},
		{file: "notify_status_other_switch.json"},
		{file: "notify_status_other_switch.json", switchID: 1, want: &shellySwitchStatus{ID: ptr(1), Output: ptr(true)}},
		{file: "notify_full_status.json", wantFull: true, want: &shellySwitchStatus{ID: ptr(0), Output: ptr(true), APower: ptr(45.3)}},
		{file: "notify_full_status_overpower.json", wantFull: true,
			want: &shellySwitchStatus{ID: ptr(0), Output: ptr(false), APower: ptr(0.0), Errors: &[]string{"overpower"}}},
		{file: "notify_full_status_without_switch.json", wantErr: true},
		{file: "notify_event_single_push.json"},
		{file: "notify_status_output_not_bool.json", wantErr: true},
		{file: "notify_status_switch_id_mismatch.json", wantErr: true},
		{file: "notify_unknown_method.json", wantErr: true},
		{file: "notify_truncated.json", wantErr: true},
		{file: "reply_switch_set_ok.json", wantErr: true}, // a reply is not a notification
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			n, err := parseShellyNotification(fixture(t, "shellygen2/"+tt.file), tt.switchID)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if n.Src != "shellyplus1pm-a8032ab636ec" {
				t.Errorf("src = %q", n.Src)
			}
			if n.Full != tt.wantFull {
				t.Errorf("full = %v, want %v", n.Full, tt.wantFull)
			}
			switch {
			case tt.want == nil && n.Switch != nil:
				t.Errorf("switch status %s, want none", fmtStatus(*n.Switch))
			case tt.want != nil && n.Switch == nil:
				t.Errorf("no switch status, want %s", fmtStatus(*tt.want))
			case tt.want != nil && fmtStatus(*n.Switch) != fmtStatus(*tt.want):
				t.Errorf("switch status %s, want %s", fmtStatus(*n.Switch), fmtStatus(*tt.want))
			}
		})
	}
}

// TestShellyPartialStatusMerges is the documented use of NotifyStatus: a
// partial status overlaid on the full one, not taken for a full one.
func TestShellyPartialStatusMerges(t *testing.T) {
	full, err := parseShellyNotification(fixture(t, "shellygen2/notify_full_status.json"), 0)
	if err != nil {
		t.Fatal(err)
	}
	power, err := parseShellyNotification(fixture(t, "shellygen2/notify_status_partial_apower.json"), 0)
	if err != nil {
		t.Fatal(err)
	}
	off, err := parseShellyNotification(fixture(t, "shellygen2/notify_status_timer_off.json"), 0)
	if err != nil {
		t.Fatal(err)
	}
	st := mergeShellySwitch(shellySwitchStatus{}, *full.Switch)
	st = mergeShellySwitch(st, *power.Switch)
	if want := (shellySwitchStatus{ID: ptr(0), Output: ptr(true), APower: ptr(12.5)}); fmtStatus(st) != fmtStatus(want) {
		t.Fatalf("after apower alone: %s, want %s (the output must stay on)", fmtStatus(st), fmtStatus(want))
	}
	st = mergeShellySwitch(st, *off.Switch)
	if want := (shellySwitchStatus{ID: ptr(0), Output: ptr(false), APower: ptr(12.5)}); fmtStatus(st) != fmtStatus(want) {
		t.Fatalf("after output alone: %s, want %s", fmtStatus(st), fmtStatus(want))
	}
}

func TestParseShellyReply(t *testing.T) {
	tests := []struct {
		file     string
		wantID   uint64
		wantIDOK bool
		wantCode int // the device's error code; 0: a result
		wantErr  bool
	}{
		{file: "reply_switch_set_ok.json", wantID: 7, wantIDOK: true},
		{file: "reply_get_status.json", wantID: 8, wantIDOK: true},
		{file: "reply_error_no_such_component.json", wantID: 9, wantIDOK: true, wantCode: -103},
		{file: "reply_string_id.json", wantIDOK: false},
		{file: "reply_without_result_or_error.json", wantErr: true},
		{file: "reply_not_json.json", wantErr: true},
		{file: "notify_status_partial_apower.json", wantErr: true}, // a notification is not a reply
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rep, err := parseShellyReply(fixture(t, "shellygen2/"+tt.file))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if rep.IDOK != tt.wantIDOK || rep.ID != tt.wantID {
				t.Errorf("id = %d (ok %v), want %d (ok %v)", rep.ID, rep.IDOK, tt.wantID, tt.wantIDOK)
			}
			if rep.Src != "shellyplus1pm-a8032ab636ec" || rep.Dst != "fabgate-bridge-test" {
				t.Errorf("src %q dst %q", rep.Src, rep.Dst)
			}
			switch {
			case tt.wantCode == 0 && rep.Err != nil:
				t.Errorf("error %v, want a result", rep.Err)
			case tt.wantCode != 0:
				var rpcErr *ShellyRPCError
				if !errors.As(error(rep.Err), &rpcErr) || rpcErr.Code != tt.wantCode || rpcErr.Message == "" {
					t.Errorf("error %v, want code %d with a message", rep.Err, tt.wantCode)
				}
			}
		})
	}
}

func TestParseShellyGetStatusResult(t *testing.T) {
	rep, err := parseShellyReply(fixture(t, "shellygen2/reply_get_status.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseShellySwitchStatus(rep.Result, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := (shellySwitchStatus{ID: ptr(0), Output: ptr(true), APower: ptr(45.3)}); fmtStatus(st) != fmtStatus(want) {
		t.Errorf("got %s, want %s", fmtStatus(st), fmtStatus(want))
	}
	if _, err := parseShellySwitchStatus(rep.Result, 1); err == nil {
		t.Error("the status of switch:0 was taken for switch:1")
	}
}

func TestShellyToggleAfter(t *testing.T) {
	tests := []struct {
		name  string
		on    bool
		lease string
		want  int64
	}{
		{"on, whole seconds", true, "90s", 90},
		{"on, rounded up", true, "1500ms", 2},
		{"on, under a second", true, "1ms", 1},
		{"on, no lease", true, "0s", 0},
		{"off never sets a timer", false, "90s", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shellyToggleAfter(tt.on, mustDuration(t, tt.lease)); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseTasmotaSensor(t *testing.T) {
	tests := []struct {
		file    string
		channel int
		want    float64
		wantOK  bool
		wantErr bool
	}{
		{file: "sensor_energy_scalar.json", channel: 0, want: 45, wantOK: true},
		{file: "sensor_energy_scalar.json", channel: 2, want: 45, wantOK: true}, // one meter for the device
		{file: "sensor_energy_array.json", channel: 0, want: 45, wantOK: true},
		{file: "sensor_energy_array.json", channel: 1, want: 45, wantOK: true},
		{file: "sensor_energy_array.json", channel: 2, want: 12.5, wantOK: true},
		{file: "sensor_energy_array.json", channel: 3, wantErr: true},
		{file: "sensor_switch_only.json", channel: 0},
		{file: "sensor_temperature_only.json", channel: 0},
		{file: "sensor_power_string.json", channel: 0, wantErr: true},
		{file: "sensor_power_array_null.json", channel: 1, wantErr: true},
		{file: "sensor_power_array_null.json", channel: 2, want: 12.5, wantOK: true},
		{file: "sensor_truncated.json", channel: 0, wantErr: true},
		{file: "result_power.json", channel: 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			w, ok, err := parseTasmotaSensor(fixture(t, "tasmota/"+tt.file), tt.channel)
			if (err != nil) != tt.wantErr {
				t.Fatalf("channel %d: err = %v, want error: %v", tt.channel, err, tt.wantErr)
			}
			if ok != tt.wantOK || w != tt.want {
				t.Errorf("channel %d: got %v W (ok %v), want %v W (ok %v)", tt.channel, w, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParseTasmotaResult(t *testing.T) {
	tests := []struct {
		file    string
		relay   int
		wantOn  bool
		wantOK  bool
		wantErr bool
	}{
		{file: "result_power.json", relay: 0, wantOn: true, wantOK: true},
		{file: "result_power.json", relay: 1, wantOn: true, wantOK: true}, // POWER is relay 1
		{file: "result_power.json", relay: 2},
		{file: "result_power1_off.json", relay: 0, wantOn: false, wantOK: true}, // SetOption26
		{file: "result_power1_off.json", relay: 1, wantOn: false, wantOK: true},
		{file: "result_power2_on.json", relay: 1},
		{file: "result_power2_on.json", relay: 2, wantOn: true, wantOK: true},
		{file: "result_other_command.json", relay: 0},
		{file: "result_command_unknown.json", relay: 0},
		{file: "result_power_custom_state_text.json", relay: 0, wantErr: true},
		{file: "result_power_number.json", relay: 0, wantErr: true},
		{file: "state_tele.json", relay: 0, wantOn: false, wantOK: true},
		{file: "state_tele_two_relays.json", relay: 1, wantOn: true, wantOK: true},
		{file: "state_tele_two_relays.json", relay: 2, wantOn: false, wantOK: true},
		{file: "state_tele_two_relays.json", relay: 3},
		{file: "sensor_truncated.json", relay: 0, wantErr: true},
		{file: "lwt_online.txt", relay: 0, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			on, ok, err := parseTasmotaResult(fixture(t, "tasmota/"+tt.file), tt.relay)
			if (err != nil) != tt.wantErr {
				t.Fatalf("relay %d: err = %v, want error: %v", tt.relay, err, tt.wantErr)
			}
			if on != tt.wantOn || ok != tt.wantOK {
				t.Errorf("relay %d: got on=%v ok=%v, want on=%v ok=%v", tt.relay, on, ok, tt.wantOn, tt.wantOK)
			}
		})
	}
}

func TestParseTasmotaPowerAndLWT(t *testing.T) {
	power := []struct {
		file    string
		want    bool
		wantErr bool
	}{
		{file: "power_on.txt", want: true},
		{file: "power_off.txt", want: false},
		{file: "power_lowercase.txt", wantErr: true},
	}
	for _, tt := range power {
		t.Run(tt.file, func(t *testing.T) {
			on, err := parseTasmotaPower(fixture(t, "tasmota/"+tt.file))
			if (err != nil) != tt.wantErr || on != tt.want {
				t.Errorf("got %v, %v; want %v, error %v", on, err, tt.want, tt.wantErr)
			}
		})
	}
	lwt := []struct {
		file    string
		want    bool
		wantErr bool
	}{
		{file: "lwt_online.txt", want: true},
		{file: "lwt_offline.txt", want: false},
		{file: "lwt_lowercase.txt", wantErr: true},
	}
	for _, tt := range lwt {
		t.Run(tt.file, func(t *testing.T) {
			online, err := parseTasmotaLWT(fixture(t, "tasmota/"+tt.file))
			if (err != nil) != tt.wantErr || online != tt.want {
				t.Errorf("got %v, %v; want %v, error %v", online, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	broker := Broker{URL: "tcp://127.0.0.1:1883"}
	tests := []struct {
		name string
		new  func() error
		want string // a piece of the message, naming the field
	}{
		{"gen1 no broker", func() error { return ShellyGen1Config{DeviceID: "shelly1-AB"}.Validate() }, "Broker.URL is empty"},
		{"gen1 bad scheme", func() error {
			return ShellyGen1Config{Broker: Broker{URL: "http://x:1883"}, DeviceID: "shelly1-AB"}.Validate()
		}, "scheme"},
		{"gen1 no id", func() error { return ShellyGen1Config{Broker: broker}.Validate() }, "DeviceID is empty"},
		{"gen1 wildcard", func() error { return ShellyGen1Config{Broker: broker, DeviceID: "shelly1-+"}.Validate() }, "wildcard"},
		{"gen1 slash", func() error { return ShellyGen1Config{Broker: broker, DeviceID: "a/b"}.Validate() }, "one topic level"},
		{"gen1 relay", func() error { return ShellyGen1Config{Broker: broker, DeviceID: "shelly1-AB", Relay: -1}.Validate() }, "Relay -1"},
		{"gen1 timeout", func() error {
			return ShellyGen1Config{Broker: broker, DeviceID: "shelly1-AB", ConfirmTimeout: -1}.Validate()
		}, "ConfirmTimeout"},
		{"tasmota timeout too long", func() error {
			return TasmotaConfig{Broker: broker, Topic: "plug", ConfirmTimeout: time.Hour}.Validate()
		}, "too long: at most 10s"},
		{"gen2 no prefix", func() error { return ShellyGen2Config{Broker: broker}.Validate() }, "Prefix is empty"},
		{"gen2 empty level", func() error { return ShellyGen2Config{Broker: broker, Prefix: "lab//plug"}.Validate() }, "empty topic level"},
		{"gen2 switch", func() error { return ShellyGen2Config{Broker: broker, Prefix: "plug", SwitchID: 300}.Validate() }, "SwitchID 300"},
		{"gen2 device id", func() error {
			return ShellyGen2Config{Broker: broker, Prefix: "plug", DeviceID: "a#"}.Validate()
		}, "DeviceID"},
		{"tasmota no topic", func() error { return TasmotaConfig{Broker: broker}.Validate() }, "Topic is empty"},
		{"tasmota relay", func() error { return TasmotaConfig{Broker: broker, Topic: "laser", Relay: 33}.Validate() }, "Relay 33"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.new()
			if err == nil || !contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error about %q", err, tt.want)
			}
		})
	}
	// The constructors refuse a bad config before touching the network.
	ctx := t.Context()
	if _, err := NewShellyGen1(ctx, ShellyGen1Config{Broker: broker}); err == nil || !contains(err.Error(), "DeviceID") {
		t.Errorf("NewShellyGen1 with no DeviceID: %v", err)
	}
	if _, err := NewShellyGen2(ctx, ShellyGen2Config{Broker: broker}); err == nil || !contains(err.Error(), "Prefix") {
		t.Errorf("NewShellyGen2 with no Prefix: %v", err)
	}
	if _, err := NewTasmota(ctx, TasmotaConfig{Topic: "laser"}); err == nil || !contains(err.Error(), "Broker.URL") {
		t.Errorf("NewTasmota with no broker: %v", err)
	}
	for name, err := range map[string]error{
		"gen1":    ShellyGen1Config{Broker: broker, DeviceID: "shelly1pm-84CCA8A1B2C3", Relay: 1}.Validate(),
		"gen2":    ShellyGen2Config{Broker: broker, Prefix: "fablab/shellyplus1pm-a8032ab636ec"}.Validate(),
		"tasmota": TasmotaConfig{Broker: broker, Topic: "tasmota_9CF9D1", Relay: 2}.Validate(),
	} {
		if err != nil {
			t.Errorf("%s: a good config was refused: %v", name, err)
		}
	}
}
