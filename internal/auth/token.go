package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// tokenBytes is the entropy of a token: 256 bits, so tokens can neither be
// guessed nor collide.
const tokenBytes = 32

// NewToken returns a new random opaque token (session, API or reset token):
// 32 bytes from crypto/rand in unpadded URL-safe base64, 43 characters. Hand
// it to the client once and store only TokenKey(token).
func NewToken() string {
	b := make([]byte, tokenBytes)
	rand.Read(b) // never fails since Go 1.24; it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// TokenKey returns the storage key of a token, its SHA-256. Tokens are
// stored hashed so that a leaked database does not leak live sessions; a
// fast hash suffices because a token has 256 bits of entropy, and looking a
// token up by its key is an exact-match index read, not a comparison an
// attacker can time.
func TokenKey(token string) [32]byte {
	return sha256.Sum256([]byte(token))
}
