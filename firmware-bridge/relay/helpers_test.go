package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/logbuf"

	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
)

// waitLong bounds every wait for something that should happen; it only
// runs out when the test fails.
const waitLong = 10 * time.Second

// shortConfirm is the ConfirmTimeout of tests where a device does not
// answer: long enough for a loaded machine's broker round trip, short
// enough to keep the test quick.
const shortConfirm = 300 * time.Millisecond

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func mustDuration(t testing.TB, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fmtStatus prints a switch status for comparisons and messages.
func fmtStatus(st shellySwitchStatus) string {
	var b strings.Builder
	b.WriteString("{")
	if st.ID != nil {
		fmt.Fprintf(&b, "id:%d ", *st.ID)
	}
	if st.Output != nil {
		fmt.Fprintf(&b, "output:%v ", *st.Output)
	}
	if st.APower != nil {
		fmt.Fprintf(&b, "apower:%v ", *st.APower)
	}
	if st.Errors != nil {
		fmt.Fprintf(&b, "errors:%q ", *st.Errors)
	}
	return strings.TrimSpace(b.String()) + "}"
}

// testLog returns a logger whose output is printed if the test fails.
func testLog(t testing.TB) *slog.Logger {
	t.Helper()
	buf := &logbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startMosquitto runs a Mosquitto broker that allows anonymous clients,
// as a lab's broker shared with its devices would.
func startMosquitto(t *testing.T) Broker {
	t.Helper()
	dir := t.TempDir()
	host, port, err := net.SplitHostPort(mqtttest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("listener %s %s\nallow_anonymous true\nset_tcp_nodelay true\n", port, host)
	if err := os.WriteFile(filepath.Join(dir, "fabgate.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return Broker{URL: "tcp://" + mqtttest.StartMosquitto(t, dir)}
}

// testCtx is a context for one step of a test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	t.Cleanup(cancel)
	return ctx
}

// fakeDevice is the MQTT side of a fake vendor device: its own
// connection to the broker, with the vendor's LWT.
type fakeDevice struct {
	t    *testing.T
	c    *mqtt.Client
	done *atomic.Bool // the test is over: the device is being switched off
}

func dialFake(t *testing.T, b Broker, name string, will *mqtt.Message) fakeDevice {
	t.Helper()
	c, err := mqtt.Connect(testCtx(t), mqtt.ClientConfig{
		Broker:   b.URL,
		ClientID: "fake-" + name,
		Will:     will,
		Log:      testLog(t),
	})
	if err != nil {
		t.Fatalf("fake device %s: %v", name, err)
	}
	done := new(atomic.Bool)
	t.Cleanup(func() {
		done.Store(true)
		c.Close(nil)
	})
	return fakeDevice{t: t, c: c, done: done}
}

// publish sends what the device sends. It may run on a handler goroutine:
// it reports with Errorf, never Fatal.
func (f fakeDevice) publish(topic, payload string, retained bool) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	err := f.c.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Retained: retained})
	if err != nil && !f.done.Load() {
		f.t.Errorf("fake device publish %s: %v", topic, err)
	}
}

func (f fakeDevice) subscribe(filter string, h func(topic string, payload []byte)) {
	f.t.Helper()
	if err := f.c.Subscribe(filter, 1, h); err != nil {
		f.t.Fatalf("fake device subscribe %s: %v", filter, err)
	}
}

// waitEvent returns the first event on events that match accepts, and the
// events that came before it. It fails the test if none comes within
// waitLong or the channel closes.
func waitEvent(t *testing.T, events <-chan Event, what string, match func(Event) bool) (Event, []Event) {
	t.Helper()
	timer := time.NewTimer(waitLong)
	defer timer.Stop()
	var before []Event
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("events closed while waiting for %s (before: %s)", what, fmtEvents(before))
			}
			if match(e) {
				return e, before
			}
			before = append(before, e)
		case <-timer.C:
			t.Fatalf("no %s within %s (got: %s)", what, waitLong, fmtEvents(before))
		}
	}
}

func isOn(want bool) func(Event) bool {
	return func(e Event) bool { return e.On != nil && *e.On == want }
}

func isPower(want float64) func(Event) bool {
	return func(e Event) bool { return e.PowerW != nil && *e.PowerW == want }
}

func isOnline(want bool) func(Event) bool {
	return func(e Event) bool { return e.Online != nil && *e.Online == want }
}

// noStateEvent fails if one of events reports the output's state: what a
// Set caused, or bad input, must not be reported.
func noStateEvent(t *testing.T, why string, events []Event) {
	t.Helper()
	for _, e := range events {
		if e.On != nil {
			t.Errorf("%s: got a state event %s", why, fmtEvents([]Event{e}))
		}
	}
}

func fmtEvents(events []Event) string {
	var parts []string
	for _, e := range events {
		var p []string
		if e.On != nil {
			p = append(p, fmt.Sprintf("on=%v", *e.On))
		}
		if e.PowerW != nil {
			p = append(p, fmt.Sprintf("power=%v", *e.PowerW))
		}
		if e.Online != nil {
			p = append(p, fmt.Sprintf("online=%v", *e.Online))
		}
		parts = append(parts, "{"+strings.Join(p, " ")+"}")
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// waitClosed waits for events to be closed, draining it.
func waitClosed(t *testing.T, events <-chan Event) {
	t.Helper()
	timer := time.NewTimer(waitLong)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("events not closed within %s", waitLong)
		}
	}
}

// recv waits for the next value on ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLong):
		t.Fatalf("no %s within %s", what, waitLong)
	}
	var zero T
	return zero
}

// eventually waits for cond, checking it every few milliseconds: for
// counters, which have no channel to wait on.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitLong, what)
		}
		<-tick.C
	}
}

// waitAll waits until each of want has matched an event, in any order:
// for events that come from different device topics, whose order the
// broker does not keep. It returns the events that matched none.
func waitAll(t *testing.T, events <-chan Event, want map[string]func(Event) bool) []Event {
	t.Helper()
	timer := time.NewTimer(waitLong)
	defer timer.Stop()
	var other []Event
	for len(want) > 0 {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("events closed while waiting for %d more (other: %s)", len(want), fmtEvents(other))
			}
			matched := false
			for name, match := range want {
				if match(e) {
					delete(want, name)
					matched = true
				}
			}
			if !matched {
				other = append(other, e)
			}
		case <-timer.C:
			var names []string
			for name := range want {
				names = append(names, name)
			}
			t.Fatalf("no %s within %s (other: %s)", strings.Join(names, ", "), waitLong, fmtEvents(other))
		}
	}
	return other
}

// drain returns the events waiting on events, without waiting for more.
func drain(events <-chan Event) []Event {
	var got []Event
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return got
			}
			got = append(got, e)
		default:
			return got
		}
	}
}
