package auth

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestNewToken(t *testing.T) {
	t.Parallel()
	const n = 1000
	seen := make(map[string]bool, n)
	for range n {
		tok := NewToken()
		if len(tok) != 43 {
			t.Fatalf("token %q has %d characters, want 43", tok, len(tok))
		}
		for _, c := range tok {
			if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				t.Fatalf("token %q contains %q, outside the unpadded base64url alphabet", tok, c)
			}
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
		if err != nil || len(b) != 32 {
			t.Fatalf("token %q decodes to %d bytes (%v), want 32", tok, len(b), err)
		}
		if seen[tok] {
			t.Fatalf("token %q returned twice in %d calls", tok, n)
		}
		seen[tok] = true
	}
}

func TestTokenKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, token, wantHex string
	}{
		// FIPS 180-2 SHA-256 example; also `printf abc | openssl dgst -sha256`.
		{"known answer abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"known answer empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := TokenKey(tc.token)
			if got := hex.EncodeToString(k[:]); got != tc.wantHex {
				t.Errorf("TokenKey(%q) = %s, want %s", tc.token, got, tc.wantHex)
			}
		})
	}
	t.Run("deterministic and distinct", func(t *testing.T) {
		t.Parallel()
		a, b := NewToken(), NewToken()
		if k1, k2 := TokenKey(a), TokenKey(strings.Clone(a)); k1 != k2 {
			t.Error("TokenKey is not deterministic")
		}
		if TokenKey(a) == TokenKey(b) {
			t.Error("two different tokens have the same key")
		}
		if k := TokenKey(a); string(k[:]) == a {
			t.Error("TokenKey returned the token itself")
		}
	})
}
