package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// IndicatorConfig configures a LED or a buzzer on a GPIO line, which shows
// the member at the machine what the bridge decided.
type IndicatorConfig struct {
	// Chip is the GPIO chip, by name ("gpiochip0") or device path
	// ("/dev/gpiochip0"); gpiodetect lists them.
	Chip string `json:"chip"`
	// Line is the line on the chip, by offset ("27") or by name
	// ("GPIO27"); gpioinfo lists them.
	Line string `json:"line"`
	// ActiveLow is set when the LED or buzzer is on while the line is low
	// (wired between the pin and 3.3 V).
	ActiveLow bool `json:"active_low"`
	// Log receives the signals that could not be shown; nil discards them.
	Log *slog.Logger `json:"-"`
}

// Validate checks the configuration; its messages say what to change.
func (c *IndicatorConfig) Validate() error {
	return validateGPIOLine("indicator", c.Chip, c.Line)
}

// indicatorPatterns are the signals an Indicator shows: durations on,
// off, on, …; the output is off after the last. Each kind has its own
// rhythm, so a buzzer tells them apart as well as a LED.
var indicatorPatterns = map[string][]time.Duration{
	// grant: one long pulse.
	"grant": {600 * time.Millisecond},
	// deny: three short pulses.
	"deny": {100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond},
	// warn (the session ends soon): two medium pulses.
	"warn": {300 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond},
}

// indicatorQueue is how many signals may wait for the one being shown;
// more are dropped: a member who taps again sees the newest answer
// soon enough without a backlog of old ones.
const indicatorQueue = 2

// Indicator is a LED or buzzer on a GPIO line. It shows the signals in
// order, one at a time, without blocking the caller.
type Indicator struct {
	name      string // chip and line, for messages
	activeLow bool
	line      gpioLine
	// after is time.After; tests replace it to step time themselves.
	after func(time.Duration) <-chan time.Time
	log   *slog.Logger

	queue chan string
	stop  chan struct{}
	done  chan struct{}

	mu     sync.Mutex // orders Signal's sends and Close
	closed bool
}

// OpenIndicator requests the line of cfg as an output, switches it off,
// and starts showing signals. The error names the chip and line and says
// what to check.
func OpenIndicator(cfg IndicatorConfig) (*Indicator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	line, err := openGPIOLine(cfg.Chip, cfg.Line)
	if err != nil {
		return nil, err
	}
	return newIndicator(cfg, line, time.After)
}

// newIndicator switches line off and starts the indicator; the line is
// released if it cannot be switched off.
func newIndicator(cfg IndicatorConfig, line gpioLine, after func(time.Duration) <-chan time.Time) (*Indicator, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ind := &Indicator{
		name:      fmt.Sprintf("%s line %s", cfg.Chip, cfg.Line),
		activeLow: cfg.ActiveLow,
		line:      line,
		after:     after,
		log:       log,
		queue:     make(chan string, indicatorQueue),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if err := ind.drive(false); err != nil {
		_ = line.close()
		return nil, fmt.Errorf("relay: switch indicator %s off at open: %w", ind.name, err)
	}
	go ind.run()
	return ind, nil
}

// Signal shows kind ("grant", "deny" or "warn") once the signals before it
// are shown, and returns at once. An unknown kind, a signal beyond the
// queue, or one after Close is logged and dropped: an indicator only
// informs, and the bridge must not wait for it.
func (ind *Indicator) Signal(kind string) {
	if _, ok := indicatorPatterns[kind]; !ok {
		ind.log.Warn("indicator signal unknown", "indicator", ind.name, "kind", kind)
		return
	}
	ind.mu.Lock()
	defer ind.mu.Unlock()
	if ind.closed {
		ind.log.Debug("indicator closed; signal dropped", "indicator", ind.name, "kind", kind)
		return
	}
	select {
	case ind.queue <- kind:
	default:
		ind.log.Debug("indicator busy; signal dropped", "indicator", ind.name, "kind", kind)
	}
}

// run shows the queued signals until Close.
func (ind *Indicator) run() {
	defer close(ind.done)
	for {
		select {
		case <-ind.stop:
			return
		case kind := <-ind.queue:
			if !ind.play(kind) {
				return
			}
		}
	}
}

// play shows one signal, and reports false when Close cut it short.
func (ind *Indicator) play(kind string) bool {
	defer ind.show(false, kind)
	for i, d := range indicatorPatterns[kind] {
		ind.show(i%2 == 0, kind)
		select {
		case <-ind.after(d):
		case <-ind.stop:
			return false
		}
	}
	return true
}

// show drives the output, logging a failure: there is no caller to tell.
func (ind *Indicator) show(on bool, kind string) {
	if err := ind.drive(on); err != nil {
		ind.log.Warn("indicator not switched", "indicator", ind.name, "kind", kind, "on", on, "err", err)
	}
}

func (ind *Indicator) drive(on bool) error { return ind.line.set(on != ind.activeLow) }

// Close stops showing signals (cutting the current one short), switches
// the output off and releases the line. Closing again does nothing.
func (ind *Indicator) Close() error {
	ind.mu.Lock()
	if ind.closed {
		ind.mu.Unlock()
		return nil
	}
	ind.closed = true
	ind.mu.Unlock()
	close(ind.stop)
	<-ind.done
	var errs []error
	if err := ind.drive(false); err != nil {
		errs = append(errs, fmt.Errorf("relay: switch indicator %s off at close: %w", ind.name, err))
	}
	if err := ind.line.close(); err != nil {
		errs = append(errs, fmt.Errorf("relay: release indicator %s: %w", ind.name, err))
	}
	return errors.Join(errs...)
}
