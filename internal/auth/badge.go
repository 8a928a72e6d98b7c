package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"strconv"
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

// DeviceAllowlistKey derives device dev's allowlist key from the server's
// allowlist root (bolt.AllowlistKey) and its id:
// HMAC-SHA256(root, "fabgate/v1/device-badge-key/<id>/<dev>"). Each device
// gets its own key, so the key in one bridge's configuration matches no
// other device's list; a new root (rotation, new id) gives every device a
// new key. The root never leaves the server.
func DeviceAllowlistKey(root []byte, id int64, dev string) []byte {
	m := hmac.New(sha256.New, root)
	m.Write([]byte("fabgate/v1/device-badge-key/" + strconv.FormatInt(id, 10) + "/" + dev))
	return m.Sum(nil)
}

// AllowlistHasher hashes badges for one device's allowlist (protocol
// §8.1): the entry of a badge is the lowercase hex
// HMAC-SHA256(device key, BadgeHash(lab key, uid)), computed from the
// stored badge hash, since raw UIDs are not kept. A device computes the
// same from the UID it reads with the two keys of its configuration. Not
// safe for concurrent use.
type AllowlistHasher struct {
	mac hash.Hash
	sum []byte
}

// NewAllowlistHasher returns a hasher keyed with a device's allowlist key.
func NewAllowlistHasher(deviceKey []byte) *AllowlistHasher {
	return &AllowlistHasher{mac: hmac.New(sha256.New, deviceKey), sum: make([]byte, 0, sha256.Size)}
}

// Hash returns the allowlist entry of the badge whose stored hash (hex,
// as BadgeHash returns it) is badgeHash.
func (h *AllowlistHasher) Hash(badgeHash string) string {
	var sum [sha256.Size]byte
	h.Sum(badgeHash, &sum)
	return hex.EncodeToString(sum[:])
}

// Sum writes into sum the entry Hash returns, as raw bytes.
func (h *AllowlistHasher) Sum(badgeHash string, sum *[sha256.Size]byte) {
	h.mac.Reset()
	io.WriteString(h.mac, badgeHash)
	h.sum = h.mac.Sum(h.sum[:0])
	copy(sum[:], h.sum)
}
