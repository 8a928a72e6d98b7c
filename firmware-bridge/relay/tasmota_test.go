package relay

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/mqtt"
)

// fakeTasmota is a Tasmota device as its MQTT documentation describes it,
// with the default FullTopic: commands on cmnd/<topic>/POWER<n> (empty:
// a query), answers on stat/<topic>/RESULT and stat/<topic>/POWER<n>,
// telemetry on tele/<topic>/STATE and SENSOR, and tele/<topic>/LWT.
type fakeTasmota struct {
	fakeDevice
	topic    string
	relays   int         // 1: a single relay, named POWER
	commands chan string // "POWER2 ON"; "POWER " for a query

	mu    sync.Mutex
	power map[int]bool // by relay, from 1
	mute  bool
}

func newFakeTasmota(t *testing.T, b Broker, topic string, relays int) *fakeTasmota {
	t.Helper()
	f := &fakeTasmota{topic: topic, relays: relays, commands: make(chan string, 64), power: make(map[int]bool)}
	f.fakeDevice = dialFake(t, b, topic, &mqtt.Message{Topic: "tele/" + topic + "/LWT", Payload: []byte("Offline"), QoS: 1, Retained: true})
	f.subscribe("cmnd/"+topic+"/+", f.onCommand)
	f.publish("tele/"+topic+"/LWT", "Online", true)
	return f
}

// name is the name a relay's state goes by.
func (f *fakeTasmota) name(n int) string {
	if f.relays == 1 {
		return "POWER"
	}
	return "POWER" + strconv.Itoa(n)
}

func (f *fakeTasmota) onCommand(topic string, payload []byte) {
	cmd := topic[strings.LastIndex(topic, "/")+1:]
	n := 1
	if cmd != "POWER" {
		var err error
		if n, err = strconv.Atoi(strings.TrimPrefix(cmd, "POWER")); err != nil || !strings.HasPrefix(cmd, "POWER") {
			f.t.Errorf("fake tasmota: unknown command %s", topic)
			return
		}
	}
	select {
	case f.commands <- cmd + " " + string(payload):
	default:
		f.t.Errorf("fake tasmota: too many commands")
	}
	f.mu.Lock()
	mute := f.mute
	f.mu.Unlock()
	if mute {
		return
	}
	switch string(payload) {
	case "ON", "OFF":
		f.mu.Lock()
		f.power[n] = string(payload) == "ON"
		f.mu.Unlock()
	case "":
	default:
		f.t.Errorf("fake tasmota: unknown payload %q", payload)
		return
	}
	f.stat(n)
}

// stat publishes relay n's state as the device does after a command or a
// button: RESULT, then the plain POWER topic.
func (f *fakeTasmota) stat(n int) {
	f.mu.Lock()
	state := "OFF"
	if f.power[n] {
		state = "ON"
	}
	f.mu.Unlock()
	f.publish("stat/"+f.topic+"/RESULT", `{"`+f.name(n)+`":"`+state+`"}`, false)
	f.publish("stat/"+f.topic+"/"+f.name(n), state, false)
}

func (f *fakeTasmota) press(n int) {
	f.mu.Lock()
	f.power[n] = !f.power[n]
	f.mu.Unlock()
	f.stat(n)
}

// setQuietly changes relay n without telling anyone, as a restart with
// PowerOnState does.
func (f *fakeTasmota) setQuietly(n int, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.power[n] = on
}

func (f *fakeTasmota) tele(name, payload string) {
	f.publish("tele/"+f.topic+"/"+name, payload, name == "LWT")
}

// waitCommand returns the next command that is not a state query.
func (f *fakeTasmota) waitCommand(t *testing.T) string {
	t.Helper()
	for {
		cmd := recv(t, f.commands, "a command")
		if !strings.HasSuffix(cmd, " ") {
			return cmd
		}
	}
}

func newTestTasmota(t *testing.T, b Broker, topic string, relay int, timeout time.Duration) *Tasmota {
	t.Helper()
	r, err := NewTasmota(testCtx(t), TasmotaConfig{Broker: b, Topic: topic, Relay: relay, ConfirmTimeout: timeout, Log: testLog(t)})
	if err != nil {
		t.Fatalf("NewTasmota: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestTasmota(t *testing.T) {
	b := startMosquitto(t)
	dev := newFakeTasmota(t, b, "laser-cutter", 1)
	r := newTestTasmota(t, b, dev.topic, 0, 0)

	if got := dev.waitCommand(t); got != "POWER OFF" {
		t.Fatalf("first command %q, want POWER OFF: the relay starts by switching off", got)
	}
	waitEvent(t, r.Events(), "online from the LWT", isOnline(true))

	t.Run("on and off are confirmed, and are not events", func(t *testing.T) {
		if err := r.Set(testCtx(t), true, time.Hour); err != nil {
			t.Fatalf("Set on: %v", err)
		}
		if got := dev.waitCommand(t); got != "POWER ON" {
			t.Fatalf("command %q, want POWER ON", got)
		}
		dev.tele("SENSOR", string(fixture(t, "tasmota/sensor_energy_scalar.json")))
		_, before := waitEvent(t, r.Events(), "the power reading", isPower(45))
		noStateEvent(t, "switched on by Set", before)

		if err := r.Set(testCtx(t), false, 0); err != nil {
			t.Fatalf("Set off: %v", err)
		}
		if got := dev.waitCommand(t); got != "POWER OFF" {
			t.Fatalf("command %q, want POWER OFF", got)
		}
		noStateEvent(t, "switched off by Set", drain(r.Events()))
	})

	t.Run("a button press is an event", func(t *testing.T) {
		dev.press(1)
		waitEvent(t, r.Events(), "on by the button", isOn(true))
		dev.press(1)
		waitEvent(t, r.Events(), "off by the button", isOn(false))
	})

	t.Run("telemetry state is an event when it changed", func(t *testing.T) {
		dev.setQuietly(1, true)
		dev.tele("STATE", strings.Replace(string(fixture(t, "tasmota/state_tele.json")), `"POWER":"OFF"`, `"POWER":"ON"`, 1))
		waitEvent(t, r.Events(), "on from STATE", isOn(true))
		dev.setQuietly(1, false)
		dev.tele("STATE", string(fixture(t, "tasmota/state_tele.json")))
		waitEvent(t, r.Events(), "off from STATE", isOn(false))
	})

	t.Run("a restart is reported and the state asked for", func(t *testing.T) {
		dev.tele("LWT", "Offline")
		waitEvent(t, r.Events(), "offline", isOnline(false))
		dev.setQuietly(1, true) // PowerOnState 1: it comes back on
		dev.tele("LWT", "Online")
		waitAll(t, r.Events(), map[string]func(Event) bool{
			"online":                  isOnline(true),
			"on from the state query": isOn(true),
		})
		if err := r.Set(testCtx(t), false, 0); err != nil {
			t.Fatalf("Set off: %v", err)
		}
	})

	t.Run("malformed payloads are dropped and change nothing", func(t *testing.T) {
		dropped := r.Dropped()
		// Known messages the relay has no use for: not dropped.
		dev.publish("stat/"+dev.topic+"/RESULT", string(fixture(t, "tasmota/result_other_command.json")), false)
		dev.tele("SENSOR", string(fixture(t, "tasmota/sensor_temperature_only.json")))
		// Bad ones.
		dev.publish("stat/"+dev.topic+"/RESULT", string(fixture(t, "tasmota/result_power_custom_state_text.json")), false)
		dev.publish("stat/"+dev.topic+"/RESULT", string(fixture(t, "tasmota/result_power_number.json")), false)
		dev.tele("SENSOR", string(fixture(t, "tasmota/sensor_power_string.json")))
		dev.publish("tele/"+dev.topic+"/LWT", "online", false)
		eventually(t, "4 dropped messages", func() bool { return r.Dropped()-dropped >= 4 })
		// A good reading after them all: the known messages, handled by
		// now, must not have been counted.
		dev.tele("SENSOR", string(fixture(t, "tasmota/sensor_energy_scalar.json")))
		waitEvent(t, r.Events(), "a good reading after the bad ones", isPower(45))
		if got := r.Dropped() - dropped; got != 4 {
			t.Errorf("Dropped grew by %d, want 4", got)
		}
		noStateEvent(t, "malformed payloads", drain(r.Events()))
		if on, known := r.core.state(); on || !known {
			t.Errorf("state on=%v known=%v, want off as the device last said", on, known)
		}
	})

	t.Run("close switches off and closes the events", func(t *testing.T) {
		for len(dev.commands) > 0 {
			<-dev.commands
		}
		if err := r.Set(testCtx(t), true, 0); err != nil {
			t.Fatalf("Set on: %v", err)
		}
		if got := dev.waitCommand(t); got != "POWER ON" {
			t.Fatalf("command %q, want POWER ON", got)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := dev.waitCommand(t); got != "POWER OFF" {
			t.Errorf("command at close %q, want POWER OFF", got)
		}
		waitClosed(t, r.Events())
	})
}

func TestTasmotaMultiRelay(t *testing.T) {
	b := startMosquitto(t)
	dev := newFakeTasmota(t, b, "tasmota_9CF9D1", 2)
	r := newTestTasmota(t, b, dev.topic, 2, 0)
	if got := dev.waitCommand(t); got != "POWER2 OFF" {
		t.Fatalf("first command %q, want POWER2 OFF", got)
	}

	if err := r.Set(testCtx(t), true, 0); err != nil {
		t.Fatalf("Set on: %v", err)
	}
	if got := dev.waitCommand(t); got != "POWER2 ON" {
		t.Fatalf("command %q, want POWER2 ON", got)
	}

	dev.press(1) // the other relay
	dev.press(2)
	_, before := waitEvent(t, r.Events(), "relay 2 off by its button", isOn(false))
	for _, e := range before {
		if e.On != nil {
			t.Errorf("relay 1's button was reported: %s", fmtEvents([]Event{e}))
		}
	}

	dev.tele("SENSOR", string(fixture(t, "tasmota/sensor_energy_array.json")))
	waitEvent(t, r.Events(), "relay 2's channel of the reading", isPower(12.5))
}

func TestTasmotaUnconfirmed(t *testing.T) {
	b := startMosquitto(t)
	dev := newFakeTasmota(t, b, "tasmota-mute", 1)
	r := newTestTasmota(t, b, dev.topic, 0, shortConfirm)
	dev.waitCommand(t)
	dev.mu.Lock()
	dev.mute = true
	dev.mu.Unlock()

	start := time.Now()
	err := r.Set(testCtx(t), true, 0)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("Set on a mute device: %v, want ErrUnconfirmed", err)
	}
	if elapsed < shortConfirm || elapsed > shortConfirm+5*time.Second {
		t.Errorf("gave up after %s, want about %s", elapsed, shortConfirm)
	}
	if got := dev.waitCommand(t); got != "POWER ON" {
		t.Errorf("command %q, want POWER ON", got)
	}
	if got := dev.waitCommand(t); got != "POWER OFF" {
		t.Errorf("command %q, want POWER OFF: a failed switch on must not leave the relay on", got)
	}
}
