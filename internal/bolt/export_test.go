package bolt

import (
	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// RawValue returns a copy of the bytes stored under key in bucket (nil
// when absent), for tests that compare stored records byte for byte.
func RawValue(s *Store, bucket string, key []byte) []byte {
	var out []byte
	_ = s.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			if v := b.Get(key); v != nil {
				out = append([]byte{}, v...)
			}
		}
		return nil
	})
	return out
}

// IDKey is an id as the store's keys write it.
func IDKey(id fablab.ID) []byte { return itob(id) }

// YearKey is a year as invoice_seq/ keys it.
func YearKey(year int) []byte { return u64(uint64(year)) }

// SetReportChunk makes the reports read n keys per read transaction until
// the returned function restores the default.
func SetReportChunk(n int) (restore func()) {
	old := reportChunk
	reportChunk = n
	return func() { reportChunk = old }
}
