package auth

import (
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Computed once on the development machine with
//
//	printf '%s' '04A2B3C4D5E6F7' | openssl dgst -sha256 -hmac 'fabgate-test-secret'
const (
	badgeSecret = "fabgate-test-secret"
	badgeUID    = "04A2B3C4D5E6F7"
	badgeWant   = "28841eb52994d6ef62e61ba2c0f6d104ecaabe1bc808469e504de89f0934eb59"
)

func TestBadgeHash(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret string
		uid    string // raw, as a reader or an admin types it
		same   bool   // whether the hash must equal badgeWant
	}{
		{"known answer", badgeSecret, badgeUID, true},
		{"colons and lower case, normalised first", badgeSecret, "04:a2:b3:c4:d5:e6:f7", true},
		{"spaces and dashes, normalised first", badgeSecret, "04 A2-B3 C4-D5 E6 F7", true},
		{"other uid", badgeSecret, "04A2B3C4D5E6F8", false},
		{"other secret", "another-secret", badgeUID, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			uid, err := fablab.NormalizeUID(tc.uid)
			if err != nil {
				t.Fatal(err)
			}
			got := BadgeHash([]byte(tc.secret), uid)
			if len(got) != 64 || strings.ToLower(got) != got {
				t.Errorf("BadgeHash = %q, want 64 lowercase hex digits", got)
			}
			if (got == badgeWant) != tc.same {
				t.Errorf("BadgeHash(%q, %q) = %s; equal to known answer %s: %v, want %v",
					tc.secret, uid, got, badgeWant, got == badgeWant, tc.same)
			}
		})
	}
}
