package fablab

import (
	"strconv"
)

// ID identifies a stored entity. IDs are allocated from bbolt sequences, are
// never reused, and are written as decimal strings in JSON.
type ID uint64

// String returns the decimal form.
func (id ID) String() string { return strconv.FormatUint(uint64(id), 10) }

// MarshalText writes the decimal form (so JSON shows a string).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads a decimal id; zero and anything else are rejected.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseID parses a decimal id as found in URLs and JSON.
func ParseID(s string) (ID, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, Errorf(EINVALID, "%q is not a valid id (a positive decimal number)", truncate(s, 40))
	}
	return ID(v), nil
}

// Truncate cuts s to n bytes, marking the cut with "…": a client's value
// quoted in an error message.
func Truncate(s string, n int) string { return truncate(s, n) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
