package auth

import (
	"encoding/base64"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

// cheap are valid parameters that hash in well under a millisecond, for
// tests where the cost does not matter.
var cheap = Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// Reference vectors of the Argon2 reference implementation (phc-winner-argon2
// src/test.c, also in libar2's test suite): password "password" unless noted,
// salt "somesalt". They show the PHC format and the key derivation agree with
// other implementations, not just with ourselves.
var referenceVectors = []struct {
	name, password, encoded string
}{
	{"m=65536 t=2 p=1", "password", "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
	{"m=256 t=2 p=1", "password", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"},
	{"m=256 t=2 p=2", "password", "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc"},
	{"differentpassword", "differentpassword", "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$C4TWUs9rDEvq7w3+J4umqA32aWKB1+DSiRuBfYxFj94"},
}

func TestHashPasswordFormat(t *testing.T) {
	t.Parallel()
	enc, err := HashPassword(OWASPParams, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "$argon2id$v=19$m=19456,t=2,p=1$"
	rest, ok := strings.CutPrefix(enc, prefix)
	if !ok {
		t.Fatalf("hash %q does not start with %q", enc, prefix)
	}
	salt64, key64, ok := strings.Cut(rest, "$")
	if !ok || strings.Contains(key64, "$") {
		t.Fatalf("hash %q: want exactly <salt>$<key> after the parameters", enc)
	}
	for _, tc := range []struct {
		name, b64 string
		wantLen   int
	}{
		{"salt", salt64, 16},
		{"key", key64, 32},
	} {
		b, err := base64.RawStdEncoding.DecodeString(tc.b64)
		if err != nil {
			t.Errorf("%s %q is not unpadded standard base64: %v", tc.name, tc.b64, err)
		}
		if len(b) != tc.wantLen {
			t.Errorf("%s is %d bytes, want %d", tc.name, len(b), tc.wantLen)
		}
	}
	h, err := parsePHC(enc)
	if err != nil {
		t.Fatalf("parsePHC(own hash): %v", err)
	}
	if h.params != OWASPParams {
		t.Errorf("parsed params %+v, want %+v", h.params, OWASPParams)
	}
}

func TestOWASPParams(t *testing.T) {
	t.Parallel()
	want := Params{MemoryKiB: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	if OWASPParams != want {
		t.Errorf("OWASPParams = %+v, want %+v", OWASPParams, want)
	}
	if err := OWASPParams.Validate(); err != nil {
		t.Errorf("OWASPParams.Validate() = %v", err)
	}
}

func TestHashVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		params   Params
		password string
	}{
		{"owasp ascii", OWASPParams, "hunter2hunter2"},
		{"minimum length", cheap, "12345678"},
		{"maximum length", cheap, strings.Repeat("x", MaxPasswordLen)},
		{"unicode", cheap, "pässwörd-😀-密码"},
		{"separators inside", cheap, "a$b,c=d$e f"},
		{"two threads", Params{MemoryKiB: 256, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 32}, "parallel lanes"},
		{"short salt long key", Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 8, KeyLen: 64}, "other lengths"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			enc, err := HashPassword(tc.params, tc.password)
			if err != nil {
				t.Fatal(err)
			}
			ok, err := VerifyPassword(enc, tc.password)
			if err != nil || !ok {
				t.Fatalf("VerifyPassword(own hash, same password) = %v, %v; want true, nil", ok, err)
			}
			if NeedsRehash(enc, tc.params) {
				t.Errorf("NeedsRehash(hash made with p, p) = true")
			}
		})
	}
}

func TestVerifyPasswordWrong(t *testing.T) {
	t.Parallel()
	const password = "Tr0ub4dor&3"
	enc, err := HashPassword(cheap, password)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, attempt string }{
		{"empty", ""},
		{"one character changed", "Tr0ub4dor&4"},
		{"case changed", "tr0ub4dor&3"},
		{"prefix", "Tr0ub4dor&"},
		{"appended", password + " "},
		{"leading space", " " + password},
		{"nul appended", password + "\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, err := VerifyPassword(enc, tc.attempt)
			if err != nil || ok {
				t.Errorf("VerifyPassword(hash, %q) = %v, %v; want false, nil", tc.attempt, ok, err)
			}
		})
	}
}

// A password over MaxPasswordLen is hashed truncated (to keep timing flat) but
// must never match, even the hash of its own first MaxPasswordLen bytes.
func TestVerifyPasswordTooLong(t *testing.T) {
	t.Parallel()
	base := strings.Repeat("p", MaxPasswordLen)
	enc, err := HashPassword(cheap, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, attempt string
		want          bool
	}{
		{"exactly max", base, true},
		{"max plus one", base + "p", false},
		{"far too long", base + strings.Repeat("p", 1<<16), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := VerifyPassword(enc, tc.attempt)
			if err != nil || ok != tc.want {
				t.Errorf("VerifyPassword = %v, %v; want %v, nil", ok, err, tc.want)
			}
		})
	}
}

func TestVerifyPasswordReferenceVectors(t *testing.T) {
	t.Parallel()
	for _, tc := range referenceVectors {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, err := VerifyPassword(tc.encoded, tc.password)
			if err != nil || !ok {
				t.Errorf("VerifyPassword(reference, %q) = %v, %v; want true, nil", tc.password, ok, err)
			}
			ok, err = VerifyPassword(tc.encoded, tc.password+"x")
			if err != nil || ok {
				t.Errorf("VerifyPassword(reference, wrong) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

func TestHashPasswordSalted(t *testing.T) {
	t.Parallel()
	const password = "same password twice"
	a, err := HashPassword(cheap, password)
	if err != nil {
		t.Fatal(err)
	}
	b, err := HashPassword(cheap, password)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two hashes of one password are equal: %q", a)
	}
	ha, _ := parsePHC(a)
	hb, _ := parsePHC(b)
	if string(ha.salt) == string(hb.salt) {
		t.Errorf("two hashes share the salt %x", ha.salt)
	}
	for _, enc := range []string{a, b} {
		if ok, err := VerifyPassword(enc, password); err != nil || !ok {
			t.Errorf("VerifyPassword(%q) = %v, %v; want true, nil", enc, ok, err)
		}
	}
}

func TestHashPasswordLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		password string
		wantErr  bool
	}{
		{"empty", "", true},
		{"7 bytes", "1234567", true},
		{"8 bytes", "12345678", false},
		{"3 runes but 9 bytes", "€€€", false},
		{"7 bytes of 4 runes", "éééa", true},
		{"1024 bytes", strings.Repeat("a", 1024), false},
		{"1025 bytes", strings.Repeat("a", 1025), true},
		{"1 MiB", strings.Repeat("a", 1<<20), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			enc, err := HashPassword(cheap, tc.password)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("HashPassword: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("HashPassword accepted a %d-byte password: %q", len(tc.password), enc)
			}
			var fe *fablab.Error
			if !errors.As(err, &fe) || fe.Code != fablab.EINVALID {
				t.Fatalf("error %v: want a *fablab.Error with code %q", err, fablab.EINVALID)
			}
			if msg := fablab.ErrorMessage(err); !strings.Contains(msg, "password") ||
				!strings.Contains(msg, "8") || !strings.Contains(msg, "1024") {
				t.Errorf("message %q should say the password must be 8 to 1024 bytes", msg)
			}
		})
	}
}

func TestHashPasswordBadParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Params
	}{
		{"zero", Params{}},
		{"time 0", Params{MemoryKiB: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"time 101", Params{MemoryKiB: 64, Time: 101, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"threads 0", Params{MemoryKiB: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32}},
		{"threads 65", Params{MemoryKiB: 1024, Time: 1, Threads: 65, SaltLen: 16, KeyLen: 32}},
		{"memory under 8 KiB per thread", Params{MemoryKiB: 15, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32}},
		{"memory over 1 GiB", Params{MemoryKiB: 1<<20 + 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"salt 7", Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 7, KeyLen: 32}},
		{"salt 65", Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 65, KeyLen: 32}},
		{"key 15", Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 15}},
		{"key 65", Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 65}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.p.Validate(); fablab.ErrorCode(err) != fablab.EINVALID || !errors.Is(err, errUnsupportedParams) {
				t.Errorf("Validate() = %v; want EINVALID wrapping errUnsupportedParams", err)
			}
			// Bad parameters are the server's fault, not the client's.
			_, err := HashPassword(tc.p, "a fine password")
			if fablab.ErrorCode(err) != fablab.EINTERNAL || !errors.Is(err, errUnsupportedParams) {
				t.Errorf("HashPassword = %v; want EINTERNAL wrapping errUnsupportedParams", err)
			}
			// Must not panic or allocate: it returns at once.
			DummyVerify(tc.p)
		})
	}
}

func TestVerifyPasswordRejectsMalformed(t *testing.T) {
	t.Parallel()
	good, err := HashPassword(cheap, "some password")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(good, "$") // "", argon2id, v=19, m=64,t=1,p=1, salt, key
	salt, key := f[4], f[5]
	join := func(parts ...string) string { return strings.Join(parts, "$") }
	// lastBitsSet changes the final base64 digit so the unused low bits are
	// non-zero: same bytes to a lax decoder, a second spelling of the hash.
	lastBitsSet := func(s string) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		i := strings.IndexByte(alphabet, s[len(s)-1])
		return s[:len(s)-1] + string(alphabet[i|1])
	}
	salt8 := base64.RawStdEncoding.EncodeToString([]byte("somesalt"))
	key32 := base64.RawStdEncoding.EncodeToString(make([]byte, 32))

	tests := []struct {
		name    string
		encoded string
		want    error // errMalformedHash or errUnsupportedParams
	}{
		{"empty", "", errMalformedHash},
		{"garbage", "not a hash", errMalformedHash},
		{"bcrypt", "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", errMalformedHash},
		{"argon2i variant", join("", "argon2i", "v=19", f[3], salt, key), errUnsupportedParams},
		{"argon2d variant", join("", "argon2d", "v=19", f[3], salt, key), errUnsupportedParams},
		{"variant upper case", join("", "ARGON2ID", "v=19", f[3], salt, key), errUnsupportedParams},
		{"version 16", join("", "argon2id", "v=16", f[3], salt, key), errUnsupportedParams},
		{"version 019", join("", "argon2id", "v=019", f[3], salt, key), errUnsupportedParams},
		{"version missing", join("", "argon2id", f[3], salt, key), errMalformedHash},
		{"no leading $", strings.TrimPrefix(good, "$"), errMalformedHash},
		{"trailing $", good + "$", errMalformedHash},
		{"key missing", join("", "argon2id", "v=19", f[3], salt), errMalformedHash},
		{"params reordered", join("", "argon2id", "v=19", "t=1,m=64,p=1", salt, key), errMalformedHash},
		{"param missing", join("", "argon2id", "v=19", "m=64,t=1", salt, key), errMalformedHash},
		{"extra param keyid", join("", "argon2id", "v=19", "m=64,t=1,p=1,keyid=AA", salt, key), errMalformedHash},
		{"param repeated", join("", "argon2id", "v=19", "m=64,t=1,t=1", salt, key), errMalformedHash},
		{"empty param", join("", "argon2id", "v=19", "m=,t=1,p=1", salt, key), errMalformedHash},
		{"leading zero", join("", "argon2id", "v=19", "m=064,t=1,p=1", salt, key), errMalformedHash},
		{"plus sign", join("", "argon2id", "v=19", "m=+64,t=1,p=1", salt, key), errMalformedHash},
		{"negative", join("", "argon2id", "v=19", "m=64,t=-1,p=1", salt, key), errMalformedHash},
		{"space", join("", "argon2id", "v=19", "m=64, t=1,p=1", salt, key), errMalformedHash},
		{"memory overflows uint32", join("", "argon2id", "v=19", "m=4294967296,t=1,p=1", salt, key), errMalformedHash},
		{"threads overflow uint8", join("", "argon2id", "v=19", "m=4096,t=1,p=256", salt, key), errMalformedHash},
		{"absurd memory", join("", "argon2id", "v=19", "m=4294967295,t=1,p=1", salt, key), errUnsupportedParams},
		{"memory 1 GiB + 1 KiB", join("", "argon2id", "v=19", "m=1048577,t=1,p=1", salt, key), errUnsupportedParams},
		{"absurd time", join("", "argon2id", "v=19", "m=64,t=4294967295,p=1", salt, key), errUnsupportedParams},
		{"time 101", join("", "argon2id", "v=19", "m=64,t=101,p=1", salt, key), errUnsupportedParams},
		{"time 0", join("", "argon2id", "v=19", "m=64,t=0,p=1", salt, key), errUnsupportedParams},
		{"threads 65", join("", "argon2id", "v=19", "m=1024,t=1,p=65", salt, key), errUnsupportedParams},
		{"threads 0", join("", "argon2id", "v=19", "m=64,t=1,p=0", salt, key), errUnsupportedParams},
		{"memory under 8 KiB per thread", join("", "argon2id", "v=19", "m=8,t=1,p=2", salt, key), errUnsupportedParams},
		{"salt not base64", join("", "argon2id", "v=19", f[3], "!!!!"+salt[4:], key), errMalformedHash},
		{"key not base64", join("", "argon2id", "v=19", f[3], salt, "*"+key[1:]), errMalformedHash},
		{"url-safe alphabet", join("", "argon2id", "v=19", "m=64,t=1,p=1", salt8, "_-"+key32[2:]), errMalformedHash},
		{"padded key", join("", "argon2id", "v=19", f[3], salt, key+"="), errMalformedHash},
		{"newline in key", join("", "argon2id", "v=19", f[3], salt, key[:10]+"\n"+key[10:]), errMalformedHash},
		{"non-canonical trailing bits", join("", "argon2id", "v=19", f[3], salt, lastBitsSet(key)), errMalformedHash},
		{"key of impossible base64 length", join("", "argon2id", "v=19", f[3], salt, key[:len(key)-2]), errMalformedHash},
		{"empty salt", join("", "argon2id", "v=19", f[3], "", key), errUnsupportedParams},
		{"salt 7 bytes", join("", "argon2id", "v=19", f[3], base64.RawStdEncoding.EncodeToString(make([]byte, 7)), key), errUnsupportedParams},
		{"key 8 bytes", join("", "argon2id", "v=19", f[3], salt, base64.RawStdEncoding.EncodeToString(make([]byte, 8))), errUnsupportedParams},
		{"key 65 bytes", join("", "argon2id", "v=19", f[3], salt, base64.RawStdEncoding.EncodeToString(make([]byte, 65))), errUnsupportedParams},
		{"too long", good + strings.Repeat("A", maxEncodedLen), errMalformedHash},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Parse first: should the limits regress, VerifyPassword would
			// run argon2 with the absurd parameters and hang the test.
			if _, err := parsePHC(tc.encoded); err == nil {
				t.Fatalf("parsePHC(%q) accepted it", tc.encoded)
			}
			ok, err := VerifyPassword(tc.encoded, "some password")
			if err == nil || ok {
				t.Fatalf("VerifyPassword(%q) = %v, %v; want an error", tc.encoded, ok, err)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v does not wrap %v", err, tc.want)
			}
			if code := fablab.ErrorCode(err); code != fablab.EINTERNAL {
				t.Errorf("error code %q, want %q (a bad stored hash is the server's fault)", code, fablab.EINTERNAL)
			}
			if !NeedsRehash(tc.encoded, cheap) {
				t.Errorf("NeedsRehash(malformed) = false, want true")
			}
		})
	}
}

// Tampering with a well-formed hash is not an error: it just no longer matches.
func TestVerifyPasswordTampered(t *testing.T) {
	t.Parallel()
	const password = "some password"
	good, err := HashPassword(cheap, password)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(good, "$")
	flip := func(b64 string) string {
		b, _ := base64.RawStdEncoding.DecodeString(b64)
		b[0] ^= 1
		return base64.RawStdEncoding.EncodeToString(b)
	}
	tests := []struct{ name, encoded string }{
		{"key bit flipped", strings.Join([]string{"", f[1], f[2], f[3], f[4], flip(f[5])}, "$")},
		{"salt bit flipped", strings.Join([]string{"", f[1], f[2], f[3], flip(f[4]), f[5]}, "$")},
		{"memory changed", strings.Join([]string{"", f[1], f[2], "m=72,t=1,p=1", f[4], f[5]}, "$")},
		{"time changed", strings.Join([]string{"", f[1], f[2], "m=64,t=2,p=1", f[4], f[5]}, "$")},
		{"threads changed", strings.Join([]string{"", f[1], f[2], "m=64,t=1,p=2", f[4], f[5]}, "$")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, err := VerifyPassword(tc.encoded, password)
			if err != nil || ok {
				t.Errorf("VerifyPassword(%q) = %v, %v; want false, nil", tc.encoded, ok, err)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	t.Parallel()
	enc, err := HashPassword(cheap, "some password")
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(*Params)) Params { p := cheap; f(&p); return p }
	tests := []struct {
		name    string
		encoded string
		p       Params
		want    bool
	}{
		{"same params", enc, cheap, false},
		{"more memory", enc, with(func(p *Params) { p.MemoryKiB *= 2 }), true},
		{"less memory", enc, with(func(p *Params) { p.MemoryKiB = 32 }), true},
		{"more time", enc, with(func(p *Params) { p.Time++ }), true},
		{"more threads", enc, with(func(p *Params) { p.Threads++ }), true},
		{"longer salt", enc, with(func(p *Params) { p.SaltLen = 32 }), true},
		{"longer key", enc, with(func(p *Params) { p.KeyLen = 64 }), true},
		{"reference vector vs owasp", referenceVectors[0].encoded, OWASPParams, true},
		{"reference vector vs its own params", referenceVectors[0].encoded,
			Params{MemoryKiB: 65536, Time: 2, Threads: 1, SaltLen: 8, KeyLen: 32}, false},
		{"malformed", "$argon2id$v=19$m=64", cheap, true},
		{"empty", "", cheap, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := NeedsRehash(tc.encoded, tc.p); got != tc.want {
				t.Errorf("NeedsRehash(%q, %+v) = %v, want %v", tc.encoded, tc.p, got, tc.want)
			}
		})
	}
}

// DummyVerify must do the memory-hard work, or it would not hide anything.
// Timing is too noisy to assert on, but argon2 allocates its whole memory
// cost, which is deterministic. Not parallel: it reads global allocation
// counters (which other goroutines can only raise, never lower).
func TestDummyVerify(t *testing.T) {
	p := Params{MemoryKiB: 4096, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	DummyVerify(p)
	runtime.ReadMemStats(&after)
	if got, want := after.TotalAlloc-before.TotalAlloc, uint64(p.MemoryKiB)*1024; got < want {
		t.Errorf("DummyVerify allocated %d bytes, want at least the %d of one argon2id run", got, want)
	}
}

// FuzzVerifyPassword feeds arbitrary strings as stored hashes: nothing may
// panic, and whatever parses must be within limits and canonical.
func FuzzVerifyPassword(f *testing.F) {
	good, err := HashPassword(cheap, "some password")
	if err != nil {
		f.Fatal(err)
	}
	seeds := []string{
		good, "", "$", "$$$$$", "$argon2id$v=19$m=64,t=1,p=1$$",
		"$argon2id$v=19$m=4294967295,t=4294967295,p=255$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$\n",
		"$argon2i$v=19$m=256,t=2,p=2$c29tZXNhbHQ$T/XOJ2mh1/TIpJHfCdQan76Q5esCFVoT5MAeIM1Oq2E",
	}
	for _, v := range referenceVectors {
		seeds = append(seeds, v.encoded)
	}
	for _, s := range seeds {
		f.Add(s, "some password")
	}
	f.Fuzz(func(t *testing.T, encoded, password string) {
		h, perr := parsePHC(encoded)
		if perr != nil {
			if ok, err := VerifyPassword(encoded, password); err == nil || ok {
				t.Fatalf("VerifyPassword(%q) = %v, %v; parsePHC failed with %v", encoded, ok, err, perr)
			}
			return
		}
		if err := h.params.Validate(); err != nil {
			t.Fatalf("parsePHC(%q) accepted params %+v: %v", encoded, h.params, err)
		}
		if again := encodePHC(h.params, h.salt, h.key); again != encoded {
			t.Fatalf("parsePHC accepted a non-canonical hash:\n got %q\nwant %q", encoded, again)
		}
		// Parsing is cheap; key derivation with up to 1 GiB and 100 passes is
		// not. Only run it where it takes microseconds.
		if uint64(h.params.MemoryKiB)*uint64(h.params.Time) > 1024 {
			return
		}
		if _, err := VerifyPassword(encoded, password); err != nil {
			t.Fatalf("VerifyPassword(%q) failed on a hash parsePHC accepted: %v", encoded, err)
		}
	})
}
