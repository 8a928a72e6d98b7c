package relay

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// GPIOConfig configures a relay (or a contactor's coil driver) on a GPIO
// line of the Linux GPIO character device.
type GPIOConfig struct {
	// Chip is the GPIO chip, by name ("gpiochip0") or device path
	// ("/dev/gpiochip0"); gpiodetect lists them. The Raspberry Pi's
	// header is on gpiochip0 (gpiochip4 on a Pi 5 with a kernel before
	// 6.6.45).
	Chip string `json:"chip"`
	// Line is the line on the chip, by offset ("17") or by name
	// ("GPIO17"); gpioinfo lists them. On a Raspberry Pi the offset is the
	// BCM GPIO number, not the header pin number.
	Line string `json:"line"`
	// ActiveLow is set for relay boards that switch on when the line is
	// low, as most opto-isolated relay modules do.
	ActiveLow bool `json:"active_low"`
}

// Validate checks the configuration; its messages say what to change.
func (c *GPIOConfig) Validate() error {
	return validateGPIOLine("gpio relay", c.Chip, c.Line)
}

// validateGPIOLine checks the chip and line of a GPIO output; what names
// the output in the messages.
func validateGPIOLine(what, chip, line string) error {
	var errs []error
	switch {
	case chip == "":
		errs = append(errs, fmt.Errorf("%s: chip: set the GPIO chip, e.g. gpiochip0 (gpiodetect lists them)", what))
	case strings.Contains(chip, "/") && !filepath.IsAbs(chip):
		errs = append(errs, fmt.Errorf("%s: chip: %q must be a chip name such as gpiochip0 or an absolute path such as /dev/gpiochip0", what, chip))
	}
	if line == "" {
		errs = append(errs, fmt.Errorf("%s: line: set the line's offset (\"17\", the BCM number on a Raspberry Pi) or name (\"GPIO17\"); gpioinfo lists them", what))
	} else if n, err := strconv.Atoi(line); err == nil && n < 0 {
		errs = append(errs, fmt.Errorf("%s: line: %d must be an offset of 0 or more, or a line name", what, n))
	}
	return errors.Join(errs...)
}

// gpioLine is the one GPIO line an output drives, in physical levels
// (high: the pin is at 3.3 V); active-low inversion is the output's job.
type gpioLine interface {
	// set drives the line.
	set(high bool) error
	// get reads the level the line is at.
	get() (high bool, err error)
	// close releases the line.
	close() error
}

// GPIO is a relay on a GPIO line. It is off from the moment it is opened,
// confirms every switch by reading the line back, and is switched off
// before the line is released.
//
// A GPIO line cannot time itself out: the bridge's own session timer ends
// a session. If the bridge dies with the output on, the line keeps its
// level until the bridge starts again and opens it, which drives it off
// first of all.
type GPIO struct {
	name      string // chip and line, for messages
	activeLow bool
	events    chan Event

	mu     sync.Mutex
	line   gpioLine
	closed bool
}

var _ Relay = (*GPIO)(nil)

// OpenGPIO requests the line of cfg as an output and drives it off at
// once; open it before anything else in the bridge starts, so the machine
// is off whatever state the line was left in. The error names the chip and
// line and says what to check (that the chip exists, the gpio group, a
// line used by another program).
func OpenGPIO(cfg GPIOConfig) (*GPIO, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	line, err := openGPIOLine(cfg.Chip, cfg.Line)
	if err != nil {
		return nil, err
	}
	return newGPIO(cfg, line)
}

// newGPIO drives line off and returns the relay; the line is released if
// it cannot be switched off.
func newGPIO(cfg GPIOConfig, line gpioLine) (*GPIO, error) {
	g := &GPIO{
		name:      fmt.Sprintf("%s line %s", cfg.Chip, cfg.Line),
		activeLow: cfg.ActiveLow,
		line:      line,
		events:    make(chan Event),
	}
	if err := g.drive(false); err != nil {
		return nil, errors.Join(fmt.Errorf("relay: switch off GPIO %s at open: %w", g.name, err), line.close())
	}
	return g, nil
}

// level is the physical level that switches the output on or off.
func (g *GPIO) level(on bool) bool { return on != g.activeLow }

// drive sets the line and reads it back. Called with g.mu held, or before
// g is shared.
func (g *GPIO) drive(on bool) error {
	want := g.level(on)
	if err := g.line.set(want); err != nil {
		return err
	}
	got, err := g.line.get()
	if err != nil {
		return fmt.Errorf("read the line back: %w", err)
	}
	if got != want {
		return fmt.Errorf("%w: the line reads %s after being driven %s: check the wiring (a pin shorted or driven by something else)", ErrUnconfirmed, gpioLevelName(got), gpioLevelName(want))
	}
	return nil
}

func gpioLevelName(high bool) string {
	if high {
		return "high"
	}
	return "low"
}

// Set implements Relay. The line switches at once, so Set returns as soon
// as the line reads back the level it was driven to; lease is not used (a
// GPIO line has no timer of its own). When switching on is not confirmed,
// the line is driven off again: the bridge takes the relay to be off.
func (g *GPIO) Set(ctx context.Context, on bool, lease time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("relay: GPIO %s is closed", g.name)
	}
	err := g.drive(on)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("relay: switch GPIO %s %s: %w", g.name, gpioOnOff(on), err)
	if on {
		if offErr := g.drive(false); offErr != nil {
			err = errors.Join(err, fmt.Errorf("relay: switch GPIO %s back off: %w", g.name, offErr))
		}
	}
	return err
}

func gpioOnOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// Events implements Relay. A GPIO line reports nothing by itself: the
// channel only closes, at Close.
func (g *GPIO) Events() <-chan Event { return g.events }

// Close implements Relay: it drives the line off, then releases it.
// Closing again does nothing.
func (g *GPIO) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	close(g.events)
	var errs []error
	if err := g.drive(false); err != nil {
		errs = append(errs, fmt.Errorf("relay: switch GPIO %s off at close: %w", g.name, err))
	}
	if err := g.line.close(); err != nil {
		errs = append(errs, fmt.Errorf("relay: release GPIO %s: %w", g.name, err))
	}
	return errors.Join(errs...)
}
