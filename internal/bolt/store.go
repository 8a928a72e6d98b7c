// Package bolt stores FabGate's data in one bbolt file.
//
// Schema (version 6). Integers in keys are big-endian so that keys sort in
// numeric and chronological order; times in keys are Unix seconds (int64,
// written as uint64 after adding 1<<63 so that sorting holds before 1970 too).
//
//	meta/
//	  "schema"        → uint64 schema version
//	  "secret"        → 32 random bytes: the lab key for badge hashes
//	  "settings"      → JSON fablab.Settings
//	  "tariffs"       → JSON []fablab.TariffGroup
//	  "mqtt_server_password" → the server's password on an external broker (made on first use)
//	  "allowlist_key" → JSON {id, root}: the server-only root of the devices' allowlist keys
//	                    and its id (made on first use, replaced by a badge key rotation)
//	members/          id → JSON memberRecord (member + password hash)
//	members_email/    lower-case email → id
//	organisations/    id → JSON fablab.Organisation
//	trainings/        id → JSON fablab.Training
//	qualifications/   member id | training id → JSON fablab.Qualification
//	badges/           hash (hex) → JSON fablab.Badge
//	badges_member/    member id | hash → nil
//	machines/         id → JSON fablab.Machine
//	bookings/         id → JSON fablab.Booking (reminded_at: its reminder was queued, never sent twice)
//	bookings_machine/ machine id | start | booking id → nil        (every state)
//	bookings_member/  member id | start | booking id → nil         (every state)
//	slots/            machine id | start → booking id | end         (occupying bookings only:
//	                  confirmed and completed; they never overlap, so they are sorted by
//	                  start and by end, and an overlap check reads two neighbours)
//	tokens/           SHA-256(token) → JSON token (member, expiry, CSRF secret, session generation)
//	resets/           SHA-256(token) → JSON password reset (member, expiry, session generation)
//	feeds/            SHA-256(token) → member id          (calendar feed tokens; one per member)
//	feeds_member/     member id → JSON {key: hex SHA-256 of the current token, created_at}
//	                  (replaced by a new token, deleted by a revocation and by whatever
//	                  ends the member's sessions: a password or role change, a suspension)
//	devices/          device id → JSON deviceRecord (device + secret hash + disabled flag)
//	machine_device/   device id → machine id   (the one source of a binding is Machine.DeviceID;
//	                  this index answers "which machine does this device drive" and keeps it unique)
//	device_seq/       device id → uint64: command seq numbers reserved so far (allocated in blocks;
//	                  kept when the device is deleted)
//	sessions/         id → JSON fablab.Session
//	sessions_machine/ machine id | start | session id → nil   (ended sessions only: an open
//	sessions_start/   start | session id → nil                  session is found through
//	sessions_member/  member id | start | session id → nil      sessions_open/, and indexed
//	                  when it ends, which keeps the commit between a tap and its unlock small)
//	sessions_open/    machine id → session id   (at most one open session per machine)
//	taps_seen/        device id | 0 | msg_id → Unix seconds   (de-duplication of taps and replays)
//	unknown_taps/     time | hash → device id   (badges no member holds, kept 24 h)
//	audit/            time | sequence → JSON fablab.AuditEvent
//	charges…, sessions_unbilled/, usage/: the ledger, drawn in charges.go
//	invoices…, payments/: invoices, credit notes and payments, drawn in invoices.go
//
// Versions: 1 created everything above up to tokens/; 2 added resets/; 3 added
// the devices and sessions buckets and indexed the machines' device ids; 4
// took open sessions out of the session time indexes; 5 added feeds/ and
// feeds_member/; 6 added the ledger and the invoices (ended sessions not
// billed yet go to sessions_unbilled/) and payment terms of 30 days.
// Sequences: each entity bucket's NextSequence allocates its ids.
//
// Stored values are the JSON encodings of the fablab types (and of the
// record types here), which the HTTP API also serves: renaming or retyping a
// JSON field of one of them changes this file format. The bytes of every
// bucket are pinned by golden files per schema version
// (testdata/schema-vN/<bucket>.golden, checked by TestStoredFormat): a
// change to a stored format fails that test until either the schema version
// is bumped with a migration that converts the old records (new golden files
// in a new testdata/schema-vN, the old ones kept), or the golden files are
// refreshed deliberately (go test ./internal/bolt -run TestStoredFormat
// -update) because old files still read the same (e.g. a new optional
// field). TestGoldenFilesOpen builds a file from every kept version and
// opens it with the current code, migrations included.
package bolt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/fabgate/fabgate/internal/fablab"
)

// SchemaVersion is the version of the layout drawn above: len(migrations).
const SchemaVersion = 6

var (
	bMeta           = []byte("meta")
	bMembers        = []byte("members")
	bMembersEmail   = []byte("members_email")
	bOrganisations  = []byte("organisations")
	bTrainings      = []byte("trainings")
	bQualifications = []byte("qualifications")
	bBadges         = []byte("badges")
	bBadgesMember   = []byte("badges_member")
	bMachines       = []byte("machines")
	bBookings       = []byte("bookings")
	bBookingsMach   = []byte("bookings_machine")
	bBookingsMember = []byte("bookings_member")
	bSlots          = []byte("slots")
	bTokens         = []byte("tokens")
	bResets         = []byte("resets")
	bFeeds          = []byte("feeds")
	bFeedsMember    = []byte("feeds_member")
	bDevices        = []byte("devices")
	bMachineDevice  = []byte("machine_device")
	bDeviceSeq      = []byte("device_seq")
	bSessions       = []byte("sessions")
	bSessionsMach   = []byte("sessions_machine")
	bSessionsStart  = []byte("sessions_start")
	bSessionsMember = []byte("sessions_member")
	bSessionsOpen   = []byte("sessions_open")
	bTapsSeen       = []byte("taps_seen")
	bUnknownTaps    = []byte("unknown_taps")
	bAudit          = []byte("audit")

	kSchema   = []byte("schema")
	kSecret   = []byte("secret")
	kSettings = []byte("settings")
	kTariffs  = []byte("tariffs")
)

// allBuckets lists every top-level bucket of the current schema.
var allBuckets = [][]byte{
	bMeta, bMembers, bMembersEmail, bOrganisations, bTrainings, bQualifications,
	bBadges, bBadgesMember, bMachines, bBookings, bBookingsMach, bBookingsMember, bSlots, bTokens,
	bResets, bDevices, bMachineDevice, bDeviceSeq, bSessions, bSessionsMach, bSessionsStart, bSessionsMember,
	bSessionsOpen, bTapsSeen, bUnknownTaps, bAudit, bFeeds, bFeedsMember,
	bCharges, bChargesAt, bChargesPayer, bChargesMember, bChargesUninvoiced, bChargesSession,
	bChargesBooking, bSessionsUnbilled, bUsage,
	bInvoices, bInvoicesNumber, bInvoicesPayer, bInvoicesPeriod, bInvoiceRuns, bInvoiceSeq,
	bInvoiceCredits, bInvoiceCharges, bPayments,
}

// migrations[i] takes a file from schema version i to i+1. Version 0 is a new,
// empty file.
var migrations = []func(tx *bbolt.Tx) error{
	migrateInit,
	func(tx *bbolt.Tx) error { // 2: password resets
		_, err := tx.CreateBucketIfNotExists(bResets)
		return err
	},
	migrateAccess,        // 3
	migrateOpenUnindexed, // 4
	func(tx *bbolt.Tx) error { // 5: calendar feeds
		for _, name := range [][]byte{bFeeds, bFeedsMember} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	}, migrateLedger, // 6: charges, invoices, payments
}

// Options configure Open.
type Options struct {
	// Timeout is how long Open waits for the file lock (another process holding it).
	Timeout time.Duration
	// Now is the clock; the system clock when nil.
	Now fablab.Clock
	// NoSync skips fsync (benchmarks of the raw engine only; never in a server).
	NoSync bool
}

// Store is FabGate's bbolt storage. It is safe for concurrent use.
type Store struct {
	db     *bbolt.DB
	now    fablab.Clock
	secret []byte
	group  *groupCommit // started once the file is open and migrated

	settingsCache *decodeCache[int, fablab.Settings]
	machineCache  *decodeCache[fablab.ID, fablab.Machine]
	memberCache   *decodeCache[fablab.ID, memberRecord]
	tokenCache    *decodeCache[[32]byte, Token] // every authenticated request reads its token; logins at once are far fewer than members
	// bookingCache serves the day's bookings of the staff dashboard.
	bookingCache *decodeCache[fablab.ID, fablab.Booking]
	// billHook: see billHook (tests only).
	billHook billHook
}

// Open opens (creating if needed) the data file at path, takes its lock and
// runs pending migrations in one write transaction.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = fablab.SystemClock
	}
	// A write open reads the file's freelist before it returns: a file cut
	// short is refused before that (checkExisting), or bbolt would fault.
	err := checkExisting(path, opts.Timeout)
	var db *bbolt.DB
	if err == nil {
		db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync, FreelistType: bbolt.FreelistMapType})
	}
	var short *cutShortError
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fablab.Errorf(fablab.ECONFLICT, "data file %s is locked by another process (is `fabgate serve` running? stop it, or use the HTTP API)", path)
	case errors.As(err, &short):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("open data file %s: %w", path, err)
	}
	s := &Store{
		db: db, now: opts.Now,
		settingsCache: newDecodeCache[int](1, decodeSettings),
		machineCache: newDecodeCache[fablab.ID](10_000, func(raw []byte) (m fablab.Machine, err error) {
			return m, getJSONBytes(raw, &m)
		}),
		memberCache: newDecodeCache[fablab.ID](100_000, decodeMember),
		tokenCache: newDecodeCache[[32]byte](10_000, func(raw []byte) (t Token, err error) {
			return t, getJSONBytes(raw, &t)
		}),
		bookingCache: newDecodeCache[fablab.ID](20_000, func(raw []byte) (b fablab.Booking, err error) {
			return b, getJSONBytes(raw, &b)
		}),
	}
	// A file already at this schema is opened without a write transaction
	// (bbolt commits one even when it changes nothing, and a commit needs
	// free pages): a full disk does not keep `fabgate check`, `fabgate
	// backup --data` or the server's reads from opening it.
	current := false
	if err := db.View(func(tx *bbolt.Tx) error {
		current = schemaOf(tx) == uint64(len(migrations))
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	if !current {
		if err := db.Update(s.migrate); err != nil {
			db.Close()
			return nil, storageFull(err)
		}
	}
	if err := db.View(func(tx *bbolt.Tx) error {
		s.secret = append([]byte(nil), tx.Bucket(bMeta).Get(kSecret)...)
		_, err := loadSettings(tx) // fail at open, not at the first request
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	s.group = newGroupCommit(db)
	return s, nil
}

// schemaOf is the schema version of the file tx reads (0: a new file).
func schemaOf(tx *bbolt.Tx) uint64 {
	if m := tx.Bucket(bMeta); m != nil {
		if b := m.Get(kSchema); len(b) == 8 {
			return binary.BigEndian.Uint64(b)
		}
	}
	return 0
}

func (s *Store) migrate(tx *bbolt.Tx) error {
	v := schemaOf(tx)
	if v > uint64(len(migrations)) {
		return fmt.Errorf("data file has schema version %d, newer than this fabgate (%d): upgrade fabgate", v, len(migrations))
	}
	for ; v < uint64(len(migrations)); v++ {
		if err := migrations[v](tx); err != nil {
			return fmt.Errorf("migrate schema %d→%d: %w", v, v+1, err)
		}
		if err := tx.Bucket(bMeta).Put(kSchema, u64(v+1)); err != nil {
			return err
		}
	}
	return nil
}

func migrateInit(tx *bbolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bMeta)
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	if err := meta.Put(kSecret, secret); err != nil {
		return err
	}
	if err := putJSON(meta, kSettings, fablab.DefaultSettings()); err != nil {
		return err
	}
	return putJSON(meta, kTariffs, fablab.DefaultTariffGroups())
}

// Close finishes the writes under way, then releases the file and its lock.
func (s *Store) Close() error {
	s.group.close()
	return s.db.Close()
}

// Path returns the data file's path.
func (s *Store) Path() string { return s.db.Path() }

// BadgeSecret returns the lab key used to hash badge UIDs.
func (s *Store) BadgeSecret() []byte { return s.secret }

// Check runs bbolt's consistency check and returns every problem found.
func (s *Store) Check() error {
	return s.db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// WriteTo writes a consistent snapshot of the whole file to w (hot backup).
// It holds a read transaction until w has taken everything: give it a local
// file, not a network peer.
func (s *Store) WriteTo(w io.Writer) (n int64, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// view and update run fn in a transaction, after checking ctx.
func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

// batch runs fn in a write transaction that may be shared with other
// concurrent batch calls (one commit and fsync for all of them); see
// groupCommit for what fn must respect.
func (s *Store) batch(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	return storageFull(s.group.run(ctx, fn))
}

// update runs fn in a write transaction of its own. A commit that found
// the disk full is ESTORAGEFULL (see storageFull).
func (s *Store) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return storageFull(s.db.Update(fn))
}

// ---- key and value helpers ----

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func itob(id fablab.ID) []byte { return u64(uint64(id)) }

func btoi(b []byte) fablab.ID { return fablab.ID(binary.BigEndian.Uint64(b)) }

// tkey encodes an instant as 8 sortable bytes (Unix seconds with the sign bit flipped).
func tkey(t time.Time) []byte { return u64(uint64(t.Unix()) ^ (1 << 63)) }

func fromTkey(b []byte) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint64(b)^(1<<63)), 0).UTC()
}

func cat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func putJSON(b *bbolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

// getJSON decodes the value at k into v; ENOTFOUND (with what) when absent.
// json.Unmarshal copies, so nothing refers to bbolt memory afterwards.
func getJSON(b *bbolt.Bucket, k []byte, v any, what string) error {
	data := b.Get(k)
	if data == nil {
		return fablab.Errorf(fablab.ENOTFOUND, "%s does not exist", what)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fablab.Internal(err, "decode stored %s", what)
	}
	return nil
}

func nextID(b *bbolt.Bucket) (fablab.ID, error) {
	v, err := b.NextSequence()
	return fablab.ID(v), err
}

// Page is a cursor-paginated slice of a list.
type Page[T any] struct {
	Items []T
	Next  fablab.ID // id to pass as After for the next page; 0 when done
}

// listByID returns up to limit values of bucket name with id > after.
func listByID[T any](tx *bbolt.Tx, name []byte, after fablab.ID, limit int) (Page[T], error) {
	c := tx.Bucket(name).Cursor()
	p := Page[T]{Items: []T{}}
	for k, v := c.Seek(itob(after + 1)); k != nil; k, v = c.Next() {
		if len(p.Items) == limit {
			p.Next = btoi(k) - 1
			break
		}
		var item T
		if err := json.Unmarshal(v, &item); err != nil {
			return p, fablab.Internal(err, "decode stored %s %d", name, btoi(k))
		}
		p.Items = append(p.Items, item)
	}
	return p, nil
}

// getJSONBytes decodes a stored value. A value that does not decode is
// damaged storage, never the client's mistake: the error is internal.
func getJSONBytes(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fablab.Internal(err, "decode stored value")
	}
	return nil
}

// Version names the state of the whole file: it changes with every write
// transaction committed since the file was created, and never otherwise.
// Something computed from reads made after Version returned v is at least
// as new as v, so a cache keyed by it is never stale: the pages' cache
// (httpapi) keys what it keeps by it.
func (s *Store) Version(ctx context.Context) (uint64, error) {
	var v uint64
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v = uint64(tx.ID()) // a read transaction's id is the last committed write's
		return nil
	})
	return v, err
}
