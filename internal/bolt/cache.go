package bolt

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// decodeCache keeps the decoded form of stored values, keyed by id and
// checked against the bytes read in the caller's transaction on every use: a
// hit is exactly what decoding those bytes would give, so it is never stale,
// whoever wrote the file since. It saves the JSON decoding on the hot read
// paths (the member behind every request, machines, settings).
//
// Values handed out share their slices, maps and pointers with the cache:
// read-only paths use it; a path that modifies what it read decodes afresh.
type decodeCache[K comparable, T any] struct {
	decode func([]byte) (T, error)
	max    int64 // entries; the cache starts over when it is reached
	m      sync.Map
	n      atomic.Int64
}

type cacheEntry[T any] struct {
	raw []byte
	val T
}

func newDecodeCache[K comparable, T any](max int64, decode func([]byte) (T, error)) *decodeCache[K, T] {
	return &decodeCache[K, T]{decode: decode, max: max}
}

// get returns the decoded value of raw, the bytes stored under k.
func (c *decodeCache[K, T]) get(k K, raw []byte) (T, error) {
	if e, ok := c.m.Load(k); ok {
		if e := e.(*cacheEntry[T]); bytes.Equal(e.raw, raw) {
			return e.val, nil
		}
	}
	v, err := c.decode(raw)
	if err != nil {
		return v, err
	}
	if c.n.Load() >= c.max {
		c.m.Clear()
		c.n.Store(0)
	}
	if _, loaded := c.m.Swap(k, &cacheEntry[T]{raw: bytes.Clone(raw), val: v}); !loaded {
		c.n.Add(1)
	}
	return v, nil
}
