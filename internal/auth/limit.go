package auth

import "sync"

// Limiter bounds how many password hashes run at once. Each argon2id hash
// with OWASPParams holds 19 MiB for tens of milliseconds, so unbounded
// parallel logins grow the process by 19 MiB each; a Limiter of about the
// core count keeps memory bounded and loses no throughput, as more hashes
// than cores would only share the same CPUs.
//
// TryAcquire never waits: a caller that gets no slot refuses its request at
// once (the HTTP layer answers 503 with Retry-After), rather than queueing
// requests whose clients may long have gone. A Limiter is safe for
// concurrent use.
type Limiter struct {
	slots chan struct{}
}

// NewLimiter returns a Limiter of n slots; n < 1 means 1.
func NewLimiter(n int) *Limiter {
	return &Limiter{slots: make(chan struct{}, max(n, 1))}
}

// TryAcquire takes a slot if one is free and returns the function that
// gives it back (safe to call more than once); ok is false when every slot
// is taken.
func (l *Limiter) TryAcquire() (release func(), ok bool) {
	select {
	case l.slots <- struct{}{}:
	default:
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { <-l.slots }) }, true
}

// Cap returns the number of slots.
func (l *Limiter) Cap() int { return cap(l.slots) }

// InUse returns the number of slots taken.
func (l *Limiter) InUse() int { return len(l.slots) }
