package relay

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// gpioTestWait bounds every wait of the GPIO and indicator tests; nothing
// here takes more than a few milliseconds when it works.
const gpioTestWait = 10 * time.Second

// fakeGPIOLine stands for a GPIO line: the test machines have no
// /dev/gpiochip*. It records what is done to it.
type fakeGPIOLine struct {
	mu     sync.Mutex
	level  bool
	stuck  *bool // when set, the level the pin reads whatever is driven
	setErr error
	ops    []string
	steps  chan<- string // when set, receives each level driven and the close
	closed bool
}

func (l *fakeGPIOLine) record(op string) {
	l.ops = append(l.ops, op)
	if l.steps != nil {
		l.steps <- op
	}
}

func (l *fakeGPIOLine) set(high bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("line released")
	}
	op := "low"
	if high {
		op = "high"
	}
	if l.setErr != nil {
		l.record("fail " + op)
		return l.setErr
	}
	l.level = high
	l.record(op)
	return nil
}

func (l *fakeGPIOLine) get() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, "get")
	if l.stuck != nil {
		return *l.stuck, nil
	}
	return l.level, nil
}

func (l *fakeGPIOLine) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.record("close")
	return nil
}

// state returns the level driven last, whether the line is released, and
// what was done to it.
func (l *fakeGPIOLine) state() (level, closed bool, ops []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.level, l.closed, append([]string(nil), l.ops...)
}

func TestGPIOOpenDrivesOffFirst(t *testing.T) {
	for _, tc := range []struct {
		activeLow bool
		off       string
	}{{false, "low"}, {true, "high"}} {
		line := &fakeGPIOLine{level: !tc.activeLow} // left on by a bridge that died
		_, err := newGPIO(GPIOConfig{Chip: "gpiochip0", Line: "17", ActiveLow: tc.activeLow}, line)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ops := line.state(); !reflect.DeepEqual(ops, []string{tc.off, "get"}) {
			t.Errorf("active_low %v: at open %q, want the line driven %s and read back before anything else", tc.activeLow, ops, tc.off)
		}
	}
}

func TestGPIOSet(t *testing.T) {
	tests := []struct {
		activeLow bool
		on        bool
		wantHigh  bool
	}{
		{false, true, true},
		{false, false, false},
		{true, true, false},
		{true, false, true},
	}
	for _, tc := range tests {
		line := &fakeGPIOLine{}
		g, err := newGPIO(GPIOConfig{Chip: "gpiochip0", Line: "17", ActiveLow: tc.activeLow}, line)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Set(context.Background(), !tc.on, 0); err != nil {
			t.Fatal(err)
		}
		if err := g.Set(context.Background(), tc.on, time.Minute); err != nil {
			t.Fatalf("active_low %v, Set(%v): %v", tc.activeLow, tc.on, err)
		}
		if level, _, ops := line.state(); level != tc.wantHigh || ops[len(ops)-1] != "get" {
			t.Errorf("active_low %v, Set(%v): line high=%v (ops %q), want high=%v, read back", tc.activeLow, tc.on, level, ops, tc.wantHigh)
		}
	}
}

func TestGPIOReadBackMismatch(t *testing.T) {
	low := false
	line := &fakeGPIOLine{stuck: &low} // shorted to ground
	g, err := newGPIO(GPIOConfig{Chip: "gpiochip0", Line: "17"}, line)
	if err != nil {
		t.Fatalf("off reads low as it should: %v", err)
	}
	err = g.Set(context.Background(), true, 0)
	if !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("Set(on) on a line stuck low = %v, want ErrUnconfirmed", err)
	}
	for _, w := range []string{"gpiochip0 line 17", "reads low", "wiring"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if level, _, _ := line.state(); level {
		t.Error("the line was left driven on after an unconfirmed switch")
	}
}

func TestGPIOOpenFailures(t *testing.T) {
	t.Run("off not confirmed", func(t *testing.T) {
		low := false
		line := &fakeGPIOLine{stuck: &low} // active low: off is high, but it reads low
		_, err := newGPIO(GPIOConfig{Chip: "gpiochip0", Line: "17", ActiveLow: true}, line)
		if !errors.Is(err, ErrUnconfirmed) || !strings.Contains(err.Error(), "at open") {
			t.Errorf("open = %v, want ErrUnconfirmed at open", err)
		}
		if _, closed, _ := line.state(); !closed {
			t.Error("the line was not released")
		}
	})
	t.Run("line fails", func(t *testing.T) {
		broken := errors.New("input/output error")
		line := &fakeGPIOLine{setErr: broken}
		_, err := newGPIO(GPIOConfig{Chip: "gpiochip0", Line: "17"}, line)
		if !errors.Is(err, broken) {
			t.Errorf("open = %v, want the line's error", err)
		}
		if _, closed, _ := line.state(); !closed {
			t.Error("the line was not released")
		}
	})
}

func TestGPIOSetFailure(t *testing.T) {
	line := &fakeGPIOLine{}
	g, err := newGPIO(GPIOConfig{Chip: "gpiochip0", Line: "GPIO17"}, line)
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("input/output error")
	line.mu.Lock()
	line.setErr = broken
	line.mu.Unlock()
	err = g.Set(context.Background(), true, 0)
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "gpiochip0 line GPIO17") {
		t.Errorf("Set = %v, want the line's error naming the line", err)
	}
}

func TestGPIOCancelled(t *testing.T) {
	line := &fakeGPIOLine{}
	g, err := newGPIO(GPIOConfig{Chip: "gpiochip0", Line: "17"}, line)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Set(ctx, true, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Set = %v, want context.Canceled", err)
	}
	if level, _, _ := line.state(); level {
		t.Error("a cancelled Set switched the line on")
	}
}

func TestGPIOClose(t *testing.T) {
	line := &fakeGPIOLine{}
	g, err := newGPIO(GPIOConfig{Chip: "gpiochip0", Line: "17", ActiveLow: true}, line)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Set(context.Background(), true, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	level, closed, ops := line.state()
	if !level || !closed || !reflect.DeepEqual(ops[len(ops)-3:], []string{"high", "get", "close"}) {
		t.Errorf("after Close: high=%v released=%v, ops %q; want driven off (high), read back, then released", level, closed, ops)
	}
	select {
	case _, ok := <-g.Events():
		if ok {
			t.Error("an event from a GPIO relay")
		}
	case <-time.After(gpioTestWait):
		t.Error("Events not closed by Close")
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := g.Set(context.Background(), true, 0); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Set after Close = %v, want an error saying it is closed", err)
	}
}

func TestGPIOConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     GPIOConfig
		wantErr string // "" for none
	}{
		{"offset", GPIOConfig{Chip: "gpiochip0", Line: "17"}, ""},
		{"name and path", GPIOConfig{Chip: "/dev/gpiochip4", Line: "GPIO17", ActiveLow: true}, ""},
		{"no chip", GPIOConfig{Line: "17"}, "chip: set the GPIO chip"},
		{"relative path", GPIOConfig{Chip: "dev/gpiochip0", Line: "17"}, "chip: \"dev/gpiochip0\" must be"},
		{"no line", GPIOConfig{Chip: "gpiochip0"}, "line: set the line's offset"},
		{"negative line", GPIOConfig{Chip: "gpiochip0", Line: "-1"}, "line: -1 must be an offset of 0 or more"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "gpio relay") {
				t.Fatalf("Validate = %v, want an error with %q", err, tc.wantErr)
			}
			if _, err := OpenGPIO(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("OpenGPIO = %v, want Validate's error", err)
			}
		})
	}
}
