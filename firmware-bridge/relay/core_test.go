package relay

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/logbuf"
)

// The state rules of every MQTT relay, without a broker.

func TestCoreReport(t *testing.T) {
	tests := []struct {
		name       string
		known, on  bool // before
		waitFor    *bool
		waitAny    bool
		report     bool
		fault      string
		wantEvent  *bool  // the state event, if any
		wantWaiter string // "confirmed", "failed", "waiting", ""
	}{
		{name: "first report off is no news", report: false},
		{name: "first report on is an event", report: true, wantEvent: ptr(true)},
		{name: "no change is no event", known: true, on: true, report: true},
		{name: "a change nobody asked for is an event", known: true, report: true, wantEvent: ptr(true)},
		{name: "the state a Set asked for confirms it, no event", known: true, waitFor: ptr(true), report: true, wantWaiter: "confirmed"},
		{name: "another state leaves the Set waiting", known: true, on: true, waitFor: ptr(true), report: false,
			wantEvent: ptr(false), wantWaiter: "waiting"},
		{name: "a fault fails a Set waiting for on", known: true, waitFor: ptr(true), report: false, fault: "overpower", wantWaiter: "failed"},
		{name: "a fault confirms a Set waiting for off", known: true, on: true, waitFor: ptr(false), report: false, fault: "overpower",
			wantWaiter: "confirmed"},
		{name: "a resync learns the state and reports the change", known: true, waitAny: true, report: true,
			wantEvent: ptr(true), wantWaiter: "confirmed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newMQTTCore("relay: test", testLog(t), time.Second)
			c.known, c.on = tt.known, tt.on
			var w *stateWaiter
			switch {
			case tt.waitFor != nil:
				w = c.expect(*tt.waitFor)
			case tt.waitAny:
				w = c.expectAny()
			}
			c.report(tt.report, tt.fault)

			if on, known := c.state(); !known || on != tt.report {
				t.Errorf("state on=%v known=%v, want on=%v", on, known, tt.report)
			}
			got := drain(c.events)
			switch {
			case tt.wantEvent == nil && len(got) > 0:
				t.Errorf("events %s, want none", fmtEvents(got))
			case tt.wantEvent != nil && (len(got) != 1 || got[0].On == nil || *got[0].On != *tt.wantEvent):
				t.Errorf("events %s, want on=%v", fmtEvents(got), *tt.wantEvent)
			}
			if w == nil {
				return
			}
			var outcome string
			select {
			case err := <-w.done:
				outcome = "confirmed"
				if err != nil {
					outcome = "failed"
					if !strings.Contains(err.Error(), tt.fault) {
						t.Errorf("error %v does not name the fault %q", err, tt.fault)
					}
				}
			default:
				outcome = "waiting"
			}
			if outcome != tt.wantWaiter {
				t.Errorf("the waiter is %s, want %s", outcome, tt.wantWaiter)
			}
		})
	}
}

func TestCoreEventsNeverBlock(t *testing.T) {
	c := newMQTTCore("relay: test", testLog(t), time.Second)
	const n = mqttRelayEventBuffer + 10
	for i := range n {
		c.power(float64(i))
	}
	if got := c.eventsDropped.Load(); got != 10 {
		t.Errorf("eventsDropped = %d, want 10", got)
	}
	if got := len(drain(c.events)); got != mqttRelayEventBuffer {
		t.Errorf("%d events kept, want %d", got, mqttRelayEventBuffer)
	}
	if !c.setOnline(true) || c.setOnline(true) {
		t.Error("online twice: the second is no change")
	}
	if c.setOnline(false) {
		t.Error("going offline is not coming online")
	}
	if got := drain(c.events); len(got) != 2 {
		t.Errorf("online events %s, want two", fmtEvents(got))
	}
}

func TestCoreDropLogsOncePerKind(t *testing.T) {
	buf := &logbuf.Buffer{}
	c := newMQTTCore("relay: test", slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), time.Second)
	for range 3 {
		c.drop("tasmota_sensor", "tele/x/SENSOR", []byte("{"), errors.New("bad"))
	}
	c.drop("tasmota_lwt", "tele/x/LWT", []byte("online"), errors.New("bad"))
	if got := c.dropped.Load(); got != 4 {
		t.Errorf("dropped = %d, want 4", got)
	}
	log := buf.String()
	if got := strings.Count(log, "level=WARN"); got != 2 {
		t.Errorf("%d warnings, want one per kind (2):\n%s", got, log)
	}
	if got := strings.Count(log, "level=DEBUG"); got != 2 {
		t.Errorf("%d debug lines, want 2:\n%s", got, log)
	}
}
