// Package bolttest opens real bbolt stores for tests: a fresh file in the
// test's temporary directory, checked for consistency and closed at cleanup.
package bolttest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
)

// Open returns a store in a new file under t.TempDir(), using now as its
// clock (the system clock when nil). At cleanup the file must pass bbolt's
// consistency check and the domain's invariants (bolt.CheckInvariants).
func Open(t testing.TB, now func() time.Time) *bolt.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fabgate.db")
	s, err := bolt.Open(path, bolt.Options{Now: now})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Errorf("store consistency check: %v", err)
		}
		if err := s.CheckInvariants(context.Background()); err != nil {
			t.Errorf("store invariants: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// Clock is a settable clock safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
