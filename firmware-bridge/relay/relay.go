// Package relay switches machines: a GPIO line, Shelly Gen1 and Gen2+
// plugs and relays, Tasmota devices, and a simulated relay. The bridge owns
// the decision; a relay only switches, reports the state it is in, and
// reports what it measures (power) or what happened to it without being asked
// (a vendor device rebooted, someone pressed its button).
package relay

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Relay is one switched output.
type Relay interface {
	// Set switches the relay and returns once the output confirms it, or
	// an error (ErrUnconfirmed when the device did not confirm in time,
	// ctx's error, or the device's own failure). lease, when > 0 and on is
	// true, is how long the output may stay on without being told again:
	// outputs with a timer of their own (Shelly's toggle_after) take it as
	// a safety net; the bridge enforces a session's end itself in any case.
	Set(ctx context.Context, on bool, lease time.Duration) error
	// Events reports what the relay saw by itself: a state it was not
	// asked for, a power reading, its own connection. The channel is
	// closed by Close.
	Events() <-chan Event
	// Close switches the output off where it can, and releases it.
	Close() error
}

// Event is something a relay reports by itself. Fields that are nil did
// not change.
type Event struct {
	On     *bool    // the output is on (true) or off (false)
	PowerW *float64 // watts drawn by the machine
	// Online reports whether a networked relay (Shelly, Tasmota) is
	// reachable; a relay that comes back online is switched off by the
	// bridge unless a session runs.
	Online *bool
}

// ErrUnconfirmed is returned by Set when the device did not confirm the
// new state in time.
var ErrUnconfirmed = errors.New("relay: the device did not confirm the switch")

// Sim is a simulated relay. It starts off.
type Sim struct {
	mu     sync.Mutex
	on     bool
	powerW float64 // drawn while on
	fail   error
	events chan Event
	closed bool
}

// NewSim returns a simulated relay that reports powerW watts while on (0:
// no power reading).
func NewSim(powerW float64) *Sim {
	return &Sim{powerW: powerW, events: make(chan Event, 16)}
}

// Set implements Relay.
func (s *Sim) Set(ctx context.Context, on bool, lease time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("relay: closed")
	}
	if s.fail != nil {
		return s.fail
	}
	s.on = on
	if s.powerW > 0 {
		p := 0.0
		if on {
			p = s.powerW
		}
		s.emit(Event{PowerW: &p})
	}
	return nil
}

// emit sends e unless the channel is full (a reader that does not keep up
// loses readings, never blocks the relay). Called with s.mu held.
func (s *Sim) emit(e Event) {
	select {
	case s.events <- e:
	default:
	}
}

// On reports whether the simulated output is on.
func (s *Sim) On() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.on
}

// SetFailure makes Set fail with err from now on (nil: work again).
func (s *Sim) SetFailure(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// SwitchOff switches the output off as if by hand (or a breaker), and
// reports it.
func (s *Sim) SwitchOff() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on = false
	off := false
	s.emit(Event{On: &off})
}

// Events implements Relay.
func (s *Sim) Events() <-chan Event { return s.events }

// Close implements Relay.
func (s *Sim) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed, s.on = true, false
		close(s.events)
	}
	return nil
}
