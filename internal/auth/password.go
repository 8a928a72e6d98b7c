// Package auth holds FabGate's credential primitives: argon2id password
// hashes in PHC string format, opaque session/API tokens stored only as
// their SHA-256, keyed badge hashes, and a login throttle. It does no I/O
// apart from reading crypto/rand; storage and HTTP live elsewhere.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Params are argon2id parameters. They are written into every hash, so
// changing them later only affects new hashes; NeedsRehash tells the login
// path when a stored hash should be upgraded.
type Params struct {
	MemoryKiB uint32 // memory cost in KiB (m)
	Time      uint32 // number of passes (t)
	Threads   uint8  // degree of parallelism (p)
	SaltLen   uint32 // salt length in bytes
	KeyLen    uint32 // derived key length in bytes
}

// OWASPParams are the argon2id minimum recommended by the OWASP Password
// Storage Cheat Sheet: m=19456 KiB (19 MiB), t=2, p=1, with a 16-byte salt
// and a 32-byte key.
var OWASPParams = Params{MemoryKiB: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Password length limits in bytes. The upper bound keeps hashing cost and
// request sizes bounded; it is far above any passphrase a person types.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 1024
)

// Limits on parameters, both for hashing and for hashes read back from
// storage: a corrupted or planted hash must not make a login allocate
// gigabytes or spin for minutes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 100
	maxThreads   = 64
	minSaltLen   = 8 // the reference implementation's minimum
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
	// maxEncodedLen is well above the longest hash the limits above allow
	// (about 210 bytes), so longer input is rejected before parsing.
	maxEncodedLen = 256
)

const (
	phcVariant = "argon2id"
	phcVersion = "v=19" // argon2.Version (0x13)
)

var (
	errMalformedHash     = errors.New("malformed argon2id hash")
	errUnsupportedParams = errors.New("unsupported argon2id parameters")
)

// Validate reports whether p is usable: 1..100 passes, 1..64 threads, at
// least 8 KiB per thread and at most 1 GiB of memory, an 8..64-byte salt and
// a 16..64-byte key. It returns an EINVALID *fablab.Error saying which one is
// out of range.
func (p Params) Validate() error {
	if err := p.check(); err != nil {
		return &fablab.Error{Code: fablab.EINVALID, Message: err.Error(), Err: errUnsupportedParams}
	}
	return nil
}

// check returns a plain description of the first parameter out of range.
func (p Params) check() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2id time must be 1 to %d, got %d", maxTime, p.Time)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("argon2id threads must be 1 to %d, got %d", maxThreads, p.Threads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("argon2id memory must be 8 KiB per thread to %d KiB, got %d", maxMemoryKiB, p.MemoryKiB)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("argon2id salt length must be %d to %d bytes, got %d", minSaltLen, maxSaltLen, p.SaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("argon2id key length must be %d to %d bytes, got %d", minKeyLen, maxKeyLen, p.KeyLen)
	}
	return nil
}

// HashPassword hashes password with a fresh random salt and returns the PHC
// string "$argon2id$v=19$m=<KiB>,t=<passes>,p=<threads>$<salt>$<key>", salt
// and key in unpadded standard base64.
//
// A password outside MinPasswordLen..MaxPasswordLen bytes is an EINVALID
// error whose message the client may see. Invalid p is a server
// misconfiguration and yields EINTERNAL.
func HashPassword(p Params, password string) (string, error) {
	if err := p.check(); err != nil {
		return "", fablab.Internal(fmt.Errorf("%w: %w", errUnsupportedParams, err), "password hashing is misconfigured")
	}
	if n := len(password); n < MinPasswordLen || n > MaxPasswordLen {
		return "", fablab.Errorf(fablab.EINVALID, "password must be %d to %d bytes long, got %d", MinPasswordLen, MaxPasswordLen, n)
	}
	salt := make([]byte, p.SaltLen)
	rand.Read(salt) // never fails since Go 1.24; it crashes the program instead
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	return encodePHC(p, salt, key), nil
}

// VerifyPassword reports whether password matches the PHC string encoded,
// recomputing the key with the parameters stored in it and comparing in
// constant time. A wrong password is (false, nil). A malformed hash or
// parameters beyond the limits of Params.Validate is an EINTERNAL error: the
// stored hash is bad, not the client's input.
func VerifyPassword(encoded, password string) (bool, error) {
	h, err := parsePHC(encoded)
	if err != nil {
		return false, fablab.Internal(err, "stored password hash is unusable")
	}
	pw := []byte(password)
	tooLong := len(pw) > MaxPasswordLen
	if tooLong {
		// No stored hash can be of such a password, but still do the work
		// so that the answer takes as long as for any other password.
		pw = pw[:MaxPasswordLen]
	}
	key := argon2.IDKey(pw, h.salt, h.params.Time, h.params.MemoryKiB, h.params.Threads, h.params.KeyLen)
	match := subtle.ConstantTimeCompare(key, h.key) == 1
	return match && !tooLong, nil
}

// NeedsRehash reports whether encoded was made with parameters other than p
// (memory, time, threads, salt or key length), so that the caller should
// store a new hash after the next successful login. A hash that cannot be
// parsed needs rehashing too.
func NeedsRehash(encoded string, p Params) bool {
	h, err := parsePHC(encoded)
	return err != nil || h.params != p
}

// DummyVerify does the work of one VerifyPassword against a hash made with p
// and discards the result. The login path calls it when the account does not
// exist, so that response time does not reveal which accounts do. With
// parameters Params.Validate rejects it returns at once, as VerifyPassword
// would.
func DummyVerify(p Params) {
	if p.check() != nil {
		return
	}
	encoded := encodePHC(p, make([]byte, p.SaltLen), make([]byte, p.KeyLen))
	_, _ = VerifyPassword(encoded, "dummy password")
}

// phcHash is a parsed PHC string.
type phcHash struct {
	params    Params
	salt, key []byte
}

func encodePHC(p Params, salt, key []byte) string {
	return fmt.Sprintf("$%s$%s$m=%d,t=%d,p=%d$%s$%s", phcVariant, phcVersion,
		p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt),
		base64.RawStdEncoding.EncodeToString(key))
}

// parsePHC accepts only the canonical form encodePHC writes (the form of the
// reference implementation): fields in order, decimal numbers without sign or
// leading zeros, unpadded base64 that re-encodes to the same text. Errors
// wrap errMalformedHash or errUnsupportedParams and never quote the input.
func parsePHC(s string) (phcHash, error) {
	var h phcHash
	malformed := func(what string) (phcHash, error) {
		return phcHash{}, fmt.Errorf("%w: %s", errMalformedHash, what)
	}
	if len(s) > maxEncodedLen {
		return malformed("too long")
	}
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" {
		return malformed("want $argon2id$v=19$m=…,t=…,p=…$salt$key")
	}
	if f[1] != phcVariant {
		return phcHash{}, fmt.Errorf("%w: variant is not argon2id", errUnsupportedParams)
	}
	if f[2] != phcVersion {
		return phcHash{}, fmt.Errorf("%w: version is not v=19", errUnsupportedParams)
	}
	ps := strings.Split(f[3], ",")
	if len(ps) != 3 {
		return malformed("want exactly the parameters m, t and p")
	}
	m, ok1 := parseParam(ps[0], "m=", 32)
	t, ok2 := parseParam(ps[1], "t=", 32)
	p, ok3 := parseParam(ps[2], "p=", 8)
	if !ok1 || !ok2 || !ok3 {
		return malformed("bad m, t or p parameter")
	}
	var ok bool
	if h.salt, ok = decodeB64(f[4]); !ok {
		return malformed("salt is not canonical unpadded base64")
	}
	if h.key, ok = decodeB64(f[5]); !ok {
		return malformed("key is not canonical unpadded base64")
	}
	h.params = Params{
		MemoryKiB: uint32(m), Time: uint32(t), Threads: uint8(p),
		SaltLen: uint32(len(h.salt)), KeyLen: uint32(len(h.key)),
	}
	if err := h.params.check(); err != nil {
		return phcHash{}, fmt.Errorf("%w: %w", errUnsupportedParams, err)
	}
	return h, nil
}

// parseParam parses "<name><decimal>" where decimal has no sign and no
// leading zero.
func parseParam(s, name string, bits int) (uint64, bool) {
	v, ok := strings.CutPrefix(s, name)
	if !ok || v == "" || len(v) > 1 && v[0] == '0' || v[0] < '0' || v[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, bits)
	return n, err == nil
}

// decodeB64 decodes unpadded standard base64 and insists that the text is
// the canonical encoding of the result: the decoder would otherwise skip
// CR/LF and tolerate non-zero trailing bits, letting one hash have many
// spellings.
func decodeB64(s string) ([]byte, bool) {
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil || base64.RawStdEncoding.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}
