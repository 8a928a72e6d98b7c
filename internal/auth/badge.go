package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// BadgeHash returns the lowercase hex HMAC-SHA256 of a badge UID under the
// lab secret; it is what fablab.Badge.Hash stores and what a tap is looked
// up by. Badge UIDs are short and often printed on the card, so a plain hash
// could be reversed by enumeration; the keyed hash cannot without the secret.
//
// uid must already be normalised with fablab.NormalizeUID: BadgeHash hashes
// the bytes it is given, and "04:a2:…" and "04A2…" hash differently.
// secret should be at least 32 random bytes.
func BadgeHash(secret []byte, uid string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(uid))
	return hex.EncodeToString(m.Sum(nil))
}
