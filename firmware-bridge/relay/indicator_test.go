package relay

import (
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/logbuf"
)

// indicatorClock replaces time.After: every wait is recorded as a step,
// and either ends at once (no time passes in the tests) or never, to
// catch the indicator in the middle of a signal.
type indicatorClock struct {
	steps chan<- string
	hold  bool
}

func (c indicatorClock) after(d time.Duration) <-chan time.Time {
	c.steps <- "wait " + d.String()
	fire := make(chan time.Time, 1)
	if !c.hold {
		fire <- time.Time{}
	}
	return fire
}

// startIndicator opens an indicator on a fake line; steps receives what
// is done to the line and each wait, in order.
func startIndicator(t *testing.T, activeLow, hold bool) (*Indicator, *fakeGPIOLine, <-chan string, *logbuf.Buffer) {
	t.Helper()
	steps := make(chan string, 64)
	line := &fakeGPIOLine{steps: steps}
	log := &logbuf.Buffer{}
	cfg := IndicatorConfig{Chip: "gpiochip0", Line: "27", ActiveLow: activeLow, Log: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ind, err := newIndicator(cfg, line, indicatorClock{steps: steps, hold: hold}.after)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ind.Close() })
	return ind, line, steps, log
}

// expectSteps waits for want, in order.
func expectSteps(t *testing.T, steps <-chan string, want ...string) {
	t.Helper()
	var got []string
	for range want {
		select {
		case s := <-steps:
			got = append(got, s)
		case <-time.After(gpioTestWait):
			t.Fatalf("steps %q, want %q", got, want)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("steps %q, want %q", got, want)
	}
}

func TestIndicatorSignals(t *testing.T) {
	tests := []struct {
		kind      string
		activeLow bool
		want      []string
	}{
		{"grant", false, []string{"high", "wait 600ms", "low"}},
		{"deny", false, []string{"high", "wait 100ms", "low", "wait 100ms", "high", "wait 100ms", "low", "wait 100ms", "high", "wait 100ms", "low"}},
		{"warn", false, []string{"high", "wait 300ms", "low", "wait 200ms", "high", "wait 300ms", "low"}},
		{"grant", true, []string{"low", "wait 600ms", "high"}},
	}
	for _, tc := range tests {
		name := tc.kind
		if tc.activeLow {
			name += " active low"
		}
		t.Run(name, func(t *testing.T) {
			ind, _, steps, _ := startIndicator(t, tc.activeLow, false)
			off := tc.want[len(tc.want)-1]
			expectSteps(t, steps, off) // switched off at open
			ind.Signal(tc.kind)
			expectSteps(t, steps, tc.want...)
		})
	}
}

func TestIndicatorPatternsDistinct(t *testing.T) {
	seen := map[string]string{}
	for kind, p := range indicatorPatterns {
		key := ""
		for _, d := range p {
			key += d.String() + " "
		}
		if other, ok := seen[key]; ok {
			t.Errorf("%s and %s show the same pattern", kind, other)
		}
		seen[key] = kind
	}
	for _, kind := range []string{"grant", "deny", "warn"} {
		if _, ok := indicatorPatterns[kind]; !ok {
			t.Errorf("no pattern for %s", kind)
		}
	}
}

func TestIndicatorQueuesInOrder(t *testing.T) {
	ind, _, steps, _ := startIndicator(t, false, false)
	expectSteps(t, steps, "low")
	ind.Signal("warn")
	ind.Signal("grant")
	expectSteps(t, steps, "high", "wait 300ms", "low", "wait 200ms", "high", "wait 300ms", "low",
		"high", "wait 600ms", "low")
}

// Signal returns at once while a signal is being shown, queues a few, and
// drops the rest; Close cuts the one being shown short and leaves the
// output off and released.
func TestIndicatorDoesNotBlock(t *testing.T) {
	ind, line, steps, log := startIndicator(t, false, true)
	expectSteps(t, steps, "low")
	ind.Signal("grant")
	expectSteps(t, steps, "high", "wait 600ms") // and the wait never ends
	for range indicatorQueue + 3 {
		ind.Signal("deny")
	}
	if !strings.Contains(log.String(), "indicator busy; signal dropped") {
		t.Errorf("dropped signals not logged; log:\n%s", log)
	}
	if err := ind.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	expectSteps(t, steps, "low", "low", "close")
	if level, closed, _ := line.state(); level || !closed {
		t.Errorf("after Close: high=%v released=%v, want off and released", level, closed)
	}
	ind.Signal("grant") // after Close: dropped, no panic
	if err := ind.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case s := <-steps:
		t.Errorf("the line was used after Close: %s", s)
	default:
	}
}

func TestIndicatorUnknownSignal(t *testing.T) {
	ind, _, steps, log := startIndicator(t, false, false)
	expectSteps(t, steps, "low")
	ind.Signal("party")
	ind.Signal("grant")
	expectSteps(t, steps, "high", "wait 600ms", "low")
	if !strings.Contains(log.String(), "indicator signal unknown") || !strings.Contains(log.String(), "kind=party") {
		t.Errorf("unknown signal not logged; log:\n%s", log)
	}
}

func TestIndicatorLineFailure(t *testing.T) {
	ind, line, steps, log := startIndicator(t, false, false)
	expectSteps(t, steps, "low")
	line.mu.Lock()
	line.setErr = errors.New("input/output error")
	line.mu.Unlock()
	ind.Signal("grant")
	expectSteps(t, steps, "fail high", "wait 600ms", "fail low")
	err := ind.Close() // waits for the signal to end: its failures are logged
	if err == nil || !strings.Contains(err.Error(), "off at close") {
		t.Errorf("Close = %v, want the failure to switch off", err)
	}
	if n := strings.Count(log.String(), "indicator not switched"); n != 2 {
		t.Errorf("%d line failures logged, want 2; log:\n%s", n, log)
	}
	if !strings.Contains(log.String(), "input/output error") || !strings.Contains(log.String(), "gpiochip0 line 27") {
		t.Errorf("failure logged without its cause or line; log:\n%s", log)
	}
}

func TestIndicatorOpenFailure(t *testing.T) {
	line := &fakeGPIOLine{setErr: errors.New("input/output error")}
	_, err := newIndicator(IndicatorConfig{Chip: "gpiochip0", Line: "27"}, line, time.After)
	if err == nil || !strings.Contains(err.Error(), "gpiochip0 line 27") {
		t.Errorf("open = %v, want an error naming the line", err)
	}
	if _, closed, _ := line.state(); !closed {
		t.Error("the line was not released")
	}
}

func TestIndicatorConfigValidate(t *testing.T) {
	if err := (&IndicatorConfig{Chip: "gpiochip0", Line: "GPIO27"}).Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	err := (&IndicatorConfig{Line: "27"}).Validate()
	if err == nil || !strings.Contains(err.Error(), "indicator: chip: set the GPIO chip") {
		t.Errorf("Validate = %v, want it to ask for the chip", err)
	}
	if _, err := OpenIndicator(IndicatorConfig{Chip: "gpiochip0"}); err == nil || !strings.Contains(err.Error(), "indicator: line:") {
		t.Errorf("OpenIndicator = %v, want Validate's error", err)
	}
}
