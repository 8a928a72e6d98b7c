package wire

import (
	"encoding/hex"
	"strconv"
)

// AllowlistWriter writes an allowlist payload entry by entry, from raw
// HMAC-SHA256 sums, without building the entries as strings first: the
// server writes one list per device, each of up to MaxAllowlistEntries
// entries. What it writes is what Encode writes for the same list, and it
// fails (in Bytes) where Encode would, with the decoder's error.
type AllowlistWriter struct {
	list Allowlist // header fields, and the entries' count in n
	n    int
	b    []byte
	err  error
}

// NewAllowlistWriter starts a list of version ver, issued at issued, hashed
// with key id kid, appending to buf[:0] (which may be nil).
func NewAllowlistWriter(buf []byte, ver, issued, kid int64) *AllowlistWriter {
	w := &AllowlistWriter{list: Allowlist{V: Version, Ver: ver, Issued: issued, Kid: kid, Entries: []AllowEntry{}}, b: buf[:0]}
	w.err = w.list.validate()
	w.b = append(w.b, `{"v":1,"ver":`...)
	w.b = strconv.AppendInt(w.b, ver, 10)
	w.b = append(w.b, `,"issued":`...)
	w.b = strconv.AppendInt(w.b, issued, 10)
	w.b = append(w.b, `,"entries":[`...)
	return w
}

// Entry adds the entry of hash sum h (written as 64 lowercase hex digits).
func (w *AllowlistWriter) Entry(h *[32]byte, tier string, until int64) {
	if w.err != nil {
		return
	}
	if err := checkTierUntil(w.n, tier, until); err != nil {
		w.err = err
		return
	}
	if w.n++; w.n > MaxAllowlistEntries {
		w.err = invalid("allowlist", "%d entries, at most %d allowed", w.n, MaxAllowlistEntries)
		return
	}
	if w.n > 1 {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, `{"h":"`...)
	w.b = hex.AppendEncode(w.b, h[:])
	w.b = append(w.b, `","tier":"`...)
	w.b = append(w.b, tier...)
	w.b = append(w.b, `","until":`...)
	w.b = strconv.AppendInt(w.b, until, 10)
	w.b = append(w.b, '}')
}

// Bytes ends the list and returns the payload.
func (w *AllowlistWriter) Bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	w.b = append(w.b, ']')
	if w.list.Kid != 0 {
		w.b = append(w.b, `,"kid":`...)
		w.b = strconv.AppendInt(w.b, w.list.Kid, 10)
	}
	w.b = append(w.b, '}')
	if len(w.b) > MaxAllowlistPayload {
		_, err := DecodeAllowlist(w.b) // the decoder's own size error
		w.err = err
		return nil, err
	}
	return w.b, nil
}
