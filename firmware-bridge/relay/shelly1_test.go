package relay

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
)

// fakeShellyGen1 is a Shelly 1PM as its MQTT API describes it: it takes
// on/off on relay/0/command, publishes the state and the power after each
// change, and has its online topic as LWT.
type fakeShellyGen1 struct {
	fakeDevice
	id       string
	watts    float64     // drawn while on
	commands chan string // every command received, answered or not
	mu       sync.Mutex
	on       bool
	mute     bool // takes commands but does nothing, like a hung device
}

func newFakeShellyGen1(t *testing.T, b Broker, id string) *fakeShellyGen1 {
	t.Helper()
	f := &fakeShellyGen1{id: id, watts: 42.5, commands: make(chan string, 64)}
	f.fakeDevice = dialFake(t, b, id, &mqtt.Message{Topic: f.onlineTopic(), Payload: []byte("false"), QoS: 1, Retained: true})
	f.subscribe(f.stateTopic()+"/command", f.onCommand)
	f.publish(f.onlineTopic(), "true", true)
	return f
}

func (f *fakeShellyGen1) stateTopic() string  { return "shellies/" + f.id + "/relay/0" }
func (f *fakeShellyGen1) onlineTopic() string { return "shellies/" + f.id + "/online" }

func (f *fakeShellyGen1) setMute(mute bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mute = mute
}

func (f *fakeShellyGen1) onCommand(_ string, payload []byte) {
	cmd := string(payload)
	select {
	case f.commands <- cmd:
	default:
		f.t.Errorf("fake shelly: too many commands")
	}
	f.mu.Lock()
	mute := f.mute
	f.mu.Unlock()
	if mute {
		return
	}
	switch cmd {
	case "on":
		f.setOutput(true)
	case "off":
		f.setOutput(false)
	default:
		f.t.Errorf("fake shelly: unknown command %q", cmd)
	}
}

// setOutput switches and publishes what the device publishes: the state,
// then the power.
func (f *fakeShellyGen1) setOutput(on bool) {
	f.mu.Lock()
	f.on = on
	f.mu.Unlock()
	f.publish(f.stateTopic(), onOff(on), false)
	w := 0.0
	if on {
		w = f.watts
	}
	f.publish(f.stateTopic()+"/power", strconv.FormatFloat(w, 'f', -1, 64), false)
}

// press is someone pressing the device's button.
func (f *fakeShellyGen1) press() {
	f.mu.Lock()
	on := !f.on
	f.mu.Unlock()
	f.setOutput(on)
}

// overpower is the device's protection switching the output off.
func (f *fakeShellyGen1) overpower() {
	f.mu.Lock()
	f.on = false
	f.mu.Unlock()
	f.publish(f.stateTopic(), "overpower", false)
	f.publish(f.stateTopic()+"/power", "0", false)
}

// comeBack is the device connecting again after a reboot: it says it is
// online and publishes its state, off.
func (f *fakeShellyGen1) comeBack() {
	f.publish(f.onlineTopic(), "true", true)
	f.setOutput(false)
}

func newTestShellyGen1(t *testing.T, b Broker, id string, timeout time.Duration) *ShellyGen1 {
	t.Helper()
	r, err := NewShellyGen1(testCtx(t), ShellyGen1Config{Broker: b, DeviceID: id, ConfirmTimeout: timeout, Log: testLog(t)})
	if err != nil {
		t.Fatalf("NewShellyGen1: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestShellyGen1(t *testing.T) {
	b := startMosquitto(t)
	dev := newFakeShellyGen1(t, b, "shelly1pm-84CCA8A1B2C3")
	r := newTestShellyGen1(t, b, dev.id, 0)

	if got := recv(t, dev.commands, "the command at start"); got != "off" {
		t.Fatalf("first command %q, want off: the relay starts by switching off", got)
	}
	waitEvent(t, r.Events(), "online from the LWT", isOnline(true))

	t.Run("on and off are confirmed, and are not events", func(t *testing.T) {
		ctx := testCtx(t)
		if err := r.Set(ctx, true, time.Hour); err != nil {
			t.Fatalf("Set on: %v", err)
		}
		if got := recv(t, dev.commands, "the on command"); got != "on" {
			t.Fatalf("command %q, want on (the lease is not sent: Gen1 has no timer)", got)
		}
		_, before := waitEvent(t, r.Events(), "the power reading after on", isPower(42.5))
		noStateEvent(t, "switched on by Set", before)

		if err := r.Set(ctx, false, 0); err != nil {
			t.Fatalf("Set off: %v", err)
		}
		if got := recv(t, dev.commands, "the off command"); got != "off" {
			t.Fatalf("command %q, want off", got)
		}
		_, before = waitEvent(t, r.Events(), "the power reading after off", isPower(0))
		noStateEvent(t, "switched off by Set", before)
	})

	t.Run("a button press is an event", func(t *testing.T) {
		dev.press()
		waitAll(t, r.Events(), map[string]func(Event) bool{
			"on by the button":  isOn(true),
			"the power reading": isPower(42.5),
		})
	})

	t.Run("overpower reads as off", func(t *testing.T) {
		dev.overpower()
		waitEvent(t, r.Events(), "off by overpower", isOn(false))
		if n := r.Dropped(); n != 0 {
			t.Errorf("Dropped = %d: overpower is a known state", n)
		}
	})

	t.Run("a reboot is reported: offline, online, off", func(t *testing.T) {
		dev.press() // on again
		waitEvent(t, r.Events(), "on by the button", isOn(true))
		dev.publish(dev.onlineTopic(), "false", true) // the broker publishes the LWT
		waitEvent(t, r.Events(), "offline", isOnline(false))
		dev.comeBack()
		waitAll(t, r.Events(), map[string]func(Event) bool{
			"online": isOnline(true),
			"off":    isOn(false),
		})
	})

	t.Run("malformed payloads are dropped and change nothing", func(t *testing.T) {
		dropped := r.Dropped()
		dev.publish(dev.stateTopic(), "ON", false)
		dev.publish(dev.stateTopic(), `{"ison":true}`, false)
		dev.publish(dev.stateTopic()+"/power", "n/a", false)
		dev.publish(dev.onlineTopic(), "1", false)
		eventually(t, "4 dropped messages", func() bool { return r.Dropped()-dropped >= 4 })
		if got := r.Dropped() - dropped; got != 4 {
			t.Errorf("Dropped grew by %d, want 4", got)
		}
		noStateEvent(t, "malformed state", drain(r.Events()))
		if on, known := r.core.state(); on || !known {
			t.Errorf("state on=%v known=%v, want off as the device last said", on, known)
		}
	})

	t.Run("concurrent Sets are serialized", func(t *testing.T) {
		ctx := testCtx(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() { errs <- r.Set(ctx, i%2 == 0, 0) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Set: %v", err)
			}
		}
		if err := r.Set(ctx, false, 0); err != nil {
			t.Fatalf("Set off: %v", err)
		}
	})

	t.Run("close switches off and closes the events", func(t *testing.T) {
		for len(dev.commands) > 0 {
			<-dev.commands
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := recv(t, dev.commands, "the command at close"); got != "off" {
			t.Errorf("command %q, want off", got)
		}
		waitClosed(t, r.Events())
		if err := r.Set(testCtx(t), true, 0); err == nil {
			t.Error("Set after Close succeeded")
		}
		if err := r.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestShellyGen1Unconfirmed(t *testing.T) {
	b := startMosquitto(t)
	dev := newFakeShellyGen1(t, b, "shelly1-mute")
	r := newTestShellyGen1(t, b, dev.id, shortConfirm)
	recv(t, dev.commands, "the command at start")
	dev.setMute(true)

	start := time.Now()
	err := r.Set(testCtx(t), true, 0)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("Set on a mute device: %v, want ErrUnconfirmed", err)
	}
	if elapsed < shortConfirm || elapsed > shortConfirm+5*time.Second {
		t.Errorf("gave up after %s, want about %s", elapsed, shortConfirm)
	}
	if got := recv(t, dev.commands, "the on command"); got != "on" {
		t.Errorf("command %q, want on", got)
	}
	if got := recv(t, dev.commands, "off after the failed on"); got != "off" {
		t.Errorf("command %q, want off: a failed switch on must not leave the output on", got)
	}

	// The caller's ctx ending is its own error, not ErrUnconfirmed.
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	if err := r.Set(ctx, false, 0); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnconfirmed) {
		t.Errorf("Set with an ending ctx: %v, want context.DeadlineExceeded", err)
	}
	cancelled, cancel2 := context.WithCancel(testCtx(t))
	cancel2()
	if err := r.Set(cancelled, true, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Set with a cancelled ctx: %v, want context.Canceled", err)
	}

	if err := r.Close(); !errors.Is(err, ErrUnconfirmed) {
		t.Errorf("Close on a mute device: %v, want ErrUnconfirmed", err)
	}
	waitClosed(t, r.Events())
}

func TestShellyGen1OfflineAtStart(t *testing.T) {
	b := startMosquitto(t)
	const id = "shelly1-late"
	start := time.Now()
	r := newTestShellyGen1(t, b, id, shortConfirm)
	if elapsed := time.Since(start); elapsed < shortConfirm {
		t.Errorf("the constructor returned after %s without the device's confirmation", elapsed)
	}
	dev := newFakeShellyGen1(t, b, id)
	waitEvent(t, r.Events(), "online once the device connects", isOnline(true))
	dev.press()
	waitEvent(t, r.Events(), "on by the button", isOn(true))
}

// An off the device does not apply leaves the relay's state unknown: when
// the device next reports itself on (its periodic report), the relay
// reports it, so the bridge switches it off again. An extension of a
// running output that is not confirmed does not switch it off.
func TestShellyGen1FailedOffReportedLater(t *testing.T) {
	b := startMosquitto(t)
	dev := newFakeShellyGen1(t, b, "shelly1-stuck")
	r := newTestShellyGen1(t, b, dev.id, shortConfirm)
	recv(t, dev.commands, "the command at start")
	ctx := testCtx(t)
	if err := r.Set(ctx, true, 0); err != nil {
		t.Fatal(err)
	}
	recv(t, dev.commands, "the on command")

	dev.setMute(true)
	if err := r.Set(ctx, true, time.Hour); !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("extension on a mute device: %v, want ErrUnconfirmed", err)
	}
	recv(t, dev.commands, "the extension's on")
	// The next command the device hears is the next Set's: no off was
	// sent after the unconfirmed extension.
	dev.setMute(false)
	if err := r.Set(ctx, true, 0); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, dev.commands, "the command after the extension"); got != "on" {
		t.Fatalf("command %q, want on: the unconfirmed extension sent an off", got)
	}
	dev.setMute(true)
	if err := r.Set(ctx, false, 0); !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("off on a mute device: %v, want ErrUnconfirmed", err)
	}
	if got := recv(t, dev.commands, "the off"); got != "off" {
		t.Fatalf("command %q, want off", got)
	}
	drain(r.Events())
	dev.setOutput(true) // its periodic report: still on
	waitEvent(t, r.Events(), "the output reported on after the failed off", isOn(true))
}

// A broker out of reach does not hold up the constructor for long; the
// relay works once the broker is there.
func TestShellyGen1BrokerLate(t *testing.T) {
	addr := mqtttest.FreeAddr(t)
	b := Broker{URL: "tcp://" + addr}
	start := time.Now()
	r, err := NewShellyGen1(testCtx(t), ShellyGen1Config{Broker: b, DeviceID: "shelly1-later", ConfirmTimeout: shortConfirm, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if elapsed := time.Since(start); elapsed > firstConnectWait+5*time.Second {
		t.Fatalf("the constructor waited %s for a broker out of reach", elapsed)
	}
	if err := r.Set(testCtx(t), true, 0); err == nil {
		t.Fatal("Set succeeded with no broker")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fabgate.conf"), []byte("listener "+strings.Split(addr, ":")[1]+" 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mqtttest.StartMosquitto(t, dir)
	dev := newFakeShellyGen1(t, b, "shelly1-later")
	eventually(t, "a Set once the broker is there", func() bool {
		return r.Set(testCtx(t), true, 0) == nil
	})
	if got := recv(t, dev.commands, "the on"); got != "on" {
		t.Fatalf("command %q, want on", got)
	}
}
