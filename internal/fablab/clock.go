package fablab

import "time"

// Clock returns the current instant. Everything that depends on time takes a
// Clock so that tests move time instead of sleeping.
type Clock func() time.Time

// SystemClock is the wall clock.
func SystemClock() time.Time { return time.Now() }
