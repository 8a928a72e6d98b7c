package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// TestAllowlistWriter: the writer writes what Encode writes for the same
// list, and refuses what Encode refuses, with the same error.
func TestAllowlistWriter(t *testing.T) {
	sum := func(i int) [32]byte { return sha256.Sum256([]byte{byte(i), byte(i >> 8)}) }
	type entry struct {
		tier  string
		until int64
	}
	tests := []struct {
		name             string
		ver, issued, kid int64
		n                int
		entry            func(i int) entry
		err              string
	}{
		{"empty, no key id", 1, 1767225600, 0, 0, nil, ""},
		{"two tiers, key id", 42, 1767225600, 3, 2, func(i int) entry {
			if i == 0 {
				return entry{TierAdmin, 0}
			}
			return entry{TierOffline, 1767312000}
		}, ""},
		{"at the bound", 7, 1, 1, MaxAllowlistEntries, func(int) entry { return entry{TierOffline, MaxTime} }, ""},
		{"over the bound", 7, 1, 1, MaxAllowlistEntries + 1, func(int) entry { return entry{TierAdmin, 0} }, "10001 entries, at most 10000 allowed"},
		{"bad tier", 7, 1, 1, 3, func(i int) entry { return entry{[]string{TierAdmin, TierOffline, "guest"}[i], 0} }, "entries[2].tier must be offline or admin"},
		{"until out of range", 7, 1, 1, 1, func(int) entry { return entry{TierOffline, -1} }, "entries[0].until"},
		{"negative version", -1, 1, 1, 0, nil, "ver must not be negative"},
		{"negative key id", 1, 1, -2, 0, nil, "kid must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := NewAllowlistWriter(nil, tc.ver, tc.issued, tc.kid)
			l := Allowlist{Ver: tc.ver, Issued: tc.issued, Kid: tc.kid}
			for i := range tc.n {
				h, e := sum(i), tc.entry(i)
				w.Entry(&h, e.tier, e.until)
				l.Entries = append(l.Entries, AllowEntry{H: hex.EncodeToString(h[:]), Tier: e.tier, Until: e.until})
			}
			got, err := w.Bytes()
			want, wantErr := Encode(&l)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || wantErr == nil || err.Error() != wantErr.Error() {
					t.Fatalf("writer error %v, Encode error %v; want both %q", err, wantErr, tc.err)
				}
				return
			}
			if err != nil || wantErr != nil {
				t.Fatalf("writer error %v, Encode error %v", err, wantErr)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("writer wrote\n%.300s\nEncode writes\n%.300s", got, want)
			}
			if _, err := DecodeAllowlist(got); err != nil {
				t.Errorf("decode: %v", err)
			}
		})
	}
}
