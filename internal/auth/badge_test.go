package auth

import (
	"encoding/hex"
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

// Computed once with openssl:
//
//	printf '%s' 'fabgate/v1/device-badge-key/1/laser-1' | openssl dgst -sha256 -hmac 'fabgate-test-root'
//	printf '%s' "$badgeWant" | openssl dgst -sha256 -mac HMAC -macopt hexkey:<the key above>
const (
	deviceKeyWant  = "19cca5a8e70b401b476674e935a811bc74bf51792f06430fc807b70b598355a0"
	deviceHashWant = "ceb6e416fa3009481fda962c9e89b3ab6336902715a0206050e92d66612bcda7"
)

func TestDeviceAllowlistKey(t *testing.T) {
	t.Parallel()
	root := []byte("fabgate-test-root")
	key := DeviceAllowlistKey(root, 1, "laser-1")
	if got := hex.EncodeToString(key); got != deviceKeyWant {
		t.Fatalf("DeviceAllowlistKey = %s, want %s", got, deviceKeyWant)
	}
	h := NewAllowlistHasher(key)
	for range 2 { // the hasher is reused between badges
		if got := h.Hash(badgeWant); got != deviceHashWant {
			t.Fatalf("Hash = %s, want %s", got, deviceHashWant)
		}
	}
	others := map[string][]byte{
		"another device":   DeviceAllowlistKey(root, 1, "laser-2"),
		"another key id":   DeviceAllowlistKey(root, 2, "laser-1"),
		"another root":     DeviceAllowlistKey([]byte("another-root"), 1, "laser-1"),
		"the bare lab key": []byte(badgeSecret),
	}
	for name, k := range others {
		if got := NewAllowlistHasher(k).Hash(badgeWant); got == deviceHashWant {
			t.Errorf("%s: same entry %s", name, got)
		}
	}
}
