// Package demo seeds the demo lab that `make run` starts.
package demo

import (
	"context"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
)

// Seed fills an empty lab with the demo data and reports whether it did; a
// lab that already has members is left as it is.
func Seed(ctx context.Context, s *bolt.Store, now time.Time, pw auth.Params) (bool, error) {
	return false, nil
}
