package mqtt

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// MosquittoUser is a Mosquitto user with a plaintext password, hashed by
// WriteMosquittoConfig.
type MosquittoUser struct{ Username, Password string }

// The hash mosquitto_passwd 2.0 writes by default: PBKDF2-HMAC-SHA512, 101
// iterations, 12 bytes of salt, 64 bytes of key, both in standard base64.
const (
	mosquittoIterations = 101
	mosquittoSaltLen    = 12
	mosquittoKeyLen     = 64
	// maxMosquittoIterations bounds the work one verification may cost.
	maxMosquittoIterations = 1_000_000
)

// MosquittoPasswordHash returns password hashed the way mosquitto_passwd
// 2.0 does by default: "$7$101$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>".
// FabGate stores device secrets in this form, so one hash serves both the
// embedded broker (VerifyMosquittoHash) and a Mosquitto password file.
func MosquittoPasswordHash(password string) (string, error) {
	if password == "" {
		return "", errors.New("mosquitto password hash: empty password")
	}
	salt := make([]byte, mosquittoSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("mosquitto password hash: %w", err)
	}
	key, err := pbkdf2.Key(sha512.New, password, salt, mosquittoIterations, mosquittoKeyLen)
	if err != nil {
		return "", fmt.Errorf("mosquitto password hash: %w", err)
	}
	return "$7$" + strconv.Itoa(mosquittoIterations) + "$" +
		base64.StdEncoding.EncodeToString(salt) + "$" +
		base64.StdEncoding.EncodeToString(key), nil
}

// VerifyMosquittoHash reports whether password matches hash, a Mosquitto
// password-file hash: "$7$<iterations>$<salt>$<key>" (PBKDF2-HMAC-SHA512,
// Mosquitto 2.0) or "$6$<salt>$<hash>" (SHA-512 of password then salt,
// Mosquitto 1.6). A malformed hash never matches.
func VerifyMosquittoHash(hash, password string) bool {
	h, ok := parseMosquittoHash(hash)
	if !ok {
		return false
	}
	var got []byte
	if h.iterations == 0 {
		d := sha512.New()
		d.Write([]byte(password))
		d.Write(h.salt)
		got = d.Sum(nil)
	} else {
		var err error
		got, err = pbkdf2.Key(sha512.New, password, h.salt, h.iterations, len(h.key))
		if err != nil {
			return false
		}
	}
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

// VerifyDeviceSecret reports whether secret logs device d in: d is not
// disabled and secret matches its stored hash (VerifyMosquittoHash). It is
// the one rule of the embedded broker's device stores.
func VerifyDeviceSecret(d fablab.Device, secret string) bool {
	return !d.Disabled && VerifyMosquittoHash(d.SecretHash, secret)
}

type mosquittoHash struct {
	iterations int // 0 for $6$
	salt, key  []byte
}

func parseMosquittoHash(s string) (mosquittoHash, bool) {
	f := strings.Split(s, "$")
	var h mosquittoHash
	var salt, key string
	switch {
	case len(f) == 4 && f[0] == "" && f[1] == "6":
		salt, key = f[2], f[3]
	case len(f) == 5 && f[0] == "" && f[1] == "7":
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 1 || n > maxMosquittoIterations {
			return h, false
		}
		h.iterations = n
		salt, key = f[3], f[4]
	default:
		return h, false
	}
	var err1, err2 error
	h.salt, err1 = base64.StdEncoding.DecodeString(salt)
	h.key, err2 = base64.StdEncoding.DecodeString(key)
	if err1 != nil || err2 != nil || len(h.salt) == 0 || len(h.key) != sha512.Size {
		return h, false
	}
	return h, true
}

// Names of the files WriteMosquittoConfig writes.
const (
	MosquittoConfFile   = "fabgate.conf"
	MosquittoPasswdFile = "passwd"
	MosquittoACLFile    = "acl"
)

// WriteMosquittoConfig writes a Mosquitto 2.0 configuration for FabGate into
// dir (created if missing):
//   - passwd: "username:hash" for the server user (its password hashed
//     here) and for each device (devices maps device id → Mosquitto hash,
//     as stored by FabGate);
//   - acl: "pattern" lines giving every device (%u = its username = its id)
//     the rights of DESIGN §4, and a "user" section giving the server user
//     read and write on everything under the prefix;
//   - fabgate.conf: one listener on listen (host:port; an empty host means
//     every interface), no anonymous clients, use_username_as_clientid (a
//     device's client id is its id, so it has one connection at most), the
//     two files above by absolute path, set_tcp_nodelay and no persistence.
//
// Leave disabled devices out of devices: they then cannot log in. After a
// device's secret is rotated or it is disabled or deleted, write the files
// again and reload Mosquitto (SIGHUP): Mosquitto 2.0 then checks its
// clients again and disconnects those whose password no longer matches.
//
// Run it with `mosquitto -c <dir>/fabgate.conf`. passwd and acl are mode
// 0600: they must belong to the user Mosquitto runs as (when started as
// root, Mosquitto 2.0 switches to the "mosquitto" user before reading them).
// Mosquitto's ACL cannot express two rules the embedded broker enforces: it
// lets a device retain any message it may publish, and refuses a forbidden
// SUBSCRIBE by never delivering rather than with a SUBACK failure.
//
// Each file is replaced atomically (written beside it, then renamed).
func WriteMosquittoConfig(dir, prefix, listen string, server MosquittoUser, devices map[string]string) error {
	if prefix == "" {
		prefix = wire.DefaultPrefix
	}
	topics, err := wire.NewTopics(prefix)
	if err != nil {
		return fmt.Errorf("mosquitto config: %w", err)
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("mosquitto config: listen address %q: %w (want host:port, e.g. 127.0.0.1:1883)", listen, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("mosquitto config: listen address %q: port must be 1-65535", listen)
	}
	if strings.ContainsFunc(host, isSpaceOrControl) {
		return fmt.Errorf("mosquitto config: listen address %q: bad host", listen)
	}
	if err := checkMosquittoUsername(server.Username); err != nil {
		return fmt.Errorf("mosquitto config: server user: %w", err)
	}
	if server.Password == "" {
		return errors.New("mosquitto config: the server user's password is empty")
	}
	ids := make([]string, 0, len(devices))
	for id, hash := range devices {
		switch {
		case !fablab.ValidDeviceID(id):
			return fmt.Errorf("mosquitto config: %q is not a device id ([a-z0-9-]{1,32})", id)
		case id == server.Username:
			return fmt.Errorf("mosquitto config: device %q has the server user's name", id)
		}
		if _, ok := parseMosquittoHash(hash); !ok {
			return fmt.Errorf("mosquitto config: device %q: not a Mosquitto password hash ($7$… or $6$…)", id)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)

	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("mosquitto config: %w", err)
	}
	if strings.ContainsFunc(abs, isSpaceOrControl) {
		// Mosquitto reads a path up to the first space.
		return fmt.Errorf("mosquitto config: directory %q must not contain spaces", abs)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return fmt.Errorf("mosquitto config: %w", err)
	}
	passwdPath := filepath.Join(abs, MosquittoPasswdFile)
	aclPath := filepath.Join(abs, MosquittoACLFile)

	serverHash, err := MosquittoPasswordHash(server.Password)
	if err != nil {
		return fmt.Errorf("mosquitto config: %w", err)
	}
	var passwd bytes.Buffer
	fmt.Fprintf(&passwd, "%s:%s\n", server.Username, serverHash)
	for _, id := range ids {
		fmt.Fprintf(&passwd, "%s:%s\n", id, devices[id])
	}

	var acl bytes.Buffer
	acl.WriteString("# FabGate MQTT ACL (written by fabgate mosquitto-config; DESIGN §4).\n")
	acl.WriteString("# Devices: username = device id, substituted for %u.\n")
	for _, line := range topics.MosquittoPatterns() {
		acl.WriteString(line + "\n")
	}
	fmt.Fprintf(&acl, "\n# The FabGate server.\nuser %s\ntopic readwrite %s/#\n", server.Username, prefix)

	var conf bytes.Buffer
	conf.WriteString("# Mosquitto configuration for FabGate (written by fabgate mosquitto-config).\n")
	conf.WriteString("per_listener_settings false\n")
	if host == "" {
		fmt.Fprintf(&conf, "listener %s\n", port)
	} else {
		fmt.Fprintf(&conf, "listener %s %s\n", port, host)
	}
	conf.WriteString("allow_anonymous false\n")
	conf.WriteString("# A device's client id is its username (= device id): one connection per\n")
	conf.WriteString("# device (a new one replaces the old), and no device can take another's id.\n")
	conf.WriteString("use_username_as_clientid true\n")
	fmt.Fprintf(&conf, "password_file %s\n", passwdPath)
	fmt.Fprintf(&conf, "acl_file %s\n", aclPath)
	conf.WriteString("# Without it every hop costs ~40 ms (Nagle + delayed ACK).\n")
	conf.WriteString("set_tcp_nodelay true\n")
	conf.WriteString("# Nothing to keep: clients use clean sessions and publish their state again.\n")
	conf.WriteString("persistence false\n")

	for _, f := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{
		{passwdPath, passwd.Bytes(), 0o600},
		{aclPath, acl.Bytes(), 0o600},
		{filepath.Join(abs, MosquittoConfFile), conf.Bytes(), 0o644},
	} {
		if err := writeFileAtomic(f.path, f.data, f.perm); err != nil {
			return fmt.Errorf("mosquitto config: %w", err)
		}
	}
	return nil
}

// checkMosquittoUsername accepts a name that fits a "name:hash" line and an
// ACL "user" line.
func checkMosquittoUsername(u string) error {
	switch {
	case u == "":
		return errors.New("empty username")
	case strings.ContainsAny(u, ":+#/%"), strings.ContainsFunc(u, isSpaceOrControl):
		return fmt.Errorf("username %q must not contain spaces, control characters or : + # / %%", u)
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// writeFileAtomic replaces path with data: readers see the old file or the
// new one, never a part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
