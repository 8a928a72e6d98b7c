// Package labtest helps end-to-end tests of the access side: a Mosquitto
// broker that a test can stop and start again on the same address, and the
// device authentication the embedded broker needs when a test starts one
// itself (to restart it under a running lab).
package labtest

import (
	"context"
	"sync"
	"testing"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
)

// DeviceAuth verifies device credentials against a store's device
// registry, as the lab does for the broker it embeds. Hold makes device
// logins wait until Release, so that a test can let the server connect
// first.
type DeviceAuth struct {
	Store *bolt.Store

	mu   sync.Mutex
	held chan struct{} // closed by Release; nil when logins go through
}

// Hold makes device logins wait (each at most the broker's authentication
// timeout) until Release.
func (a *DeviceAuth) Hold() {
	a.mu.Lock()
	if a.held == nil {
		a.held = make(chan struct{})
	}
	a.mu.Unlock()
}

// Release lets the waiting and later device logins through.
func (a *DeviceAuth) Release() {
	a.mu.Lock()
	if a.held != nil {
		close(a.held)
		a.held = nil
	}
	a.mu.Unlock()
}

// VerifyDevice implements mqtt.DeviceAuth.
func (a *DeviceAuth) VerifyDevice(ctx context.Context, id, secret string) (bool, error) {
	a.mu.Lock()
	held := a.held
	a.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	d, err := a.Store.Device(ctx, id)
	if fablab.ErrorCode(err) == fablab.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return mqtt.VerifyDeviceSecret(d, secret), nil
}

// Mosquitto is a Mosquitto broker run by mqtttest.StartMosquitto from the
// configuration in a directory (see mqtt.WriteMosquittoConfig), which the
// test can Stop and Start again on the same address. It is stopped at the
// test's cleanup at the latest.
type Mosquitto struct {
	t   testing.TB
	dir string

	mu      sync.Mutex
	addr    string
	running *cleanups // the running broker's cleanups, nil when stopped
}

// StartMosquitto starts a Mosquitto broker, skipping or failing the test as
// mqtttest.RequireMosquitto does when Mosquitto is not installed.
func StartMosquitto(t testing.TB, dir string) *Mosquitto {
	t.Helper()
	m := &Mosquitto{t: t, dir: dir}
	t.Cleanup(m.Stop)
	m.Start()
	return m
}

// Addr returns the broker's host:port, the same after every restart.
func (m *Mosquitto) Addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr
}

// Start starts the broker again after Stop (it does nothing while it runs).
// It must be called from the test's goroutine.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running != nil {
		return
	}
	c := &cleanups{TB: m.t}
	addr := mqtttest.StartMosquitto(c, m.dir)
	if m.addr != "" && addr != m.addr {
		c.run()
		m.t.Fatalf("mosquitto restarted on %s, not on %s", addr, m.addr)
	}
	m.addr, m.running = addr, c
}

// Stop stops the broker (SIGTERM, as a service manager does) and waits for
// it to exit. Its clients see their connection drop.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	c := m.running
	m.running = nil
	m.mu.Unlock()
	if c != nil {
		c.run()
	}
}

// cleanups is a testing.TB whose Cleanup functions run when the owner says,
// not at the end of the test: mqtttest.StartMosquitto stops its broker in a
// cleanup.
type cleanups struct {
	testing.TB
	mu  sync.Mutex
	fns []func()
}

func (c *cleanups) Cleanup(f func()) {
	c.mu.Lock()
	c.fns = append(c.fns, f)
	c.mu.Unlock()
}

func (c *cleanups) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
