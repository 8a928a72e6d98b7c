package bolt

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

func TestSchemaVersionIsTheNumberOfMigrations(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Fatalf("SchemaVersion = %d but there are %d migrations", SchemaVersion, len(migrations))
	}
}

// A file left at schema 1 (before password resets) is migrated at open and
// keeps its data.
func TestMigrateFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var secret []byte
	if err := db.Update(func(tx *bbolt.Tx) error {
		if err := migrations[0](tx); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bResets); err != nil { // version 1 had no resets/
			return err
		}
		secret = bytes.Clone(tx.Bucket(bMeta).Get(kSecret))
		return tx.Bucket(bMeta).Put(kSchema, u64(1))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("open a version 1 file: %v", err)
	}
	defer s.Close()
	if err := s.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bMeta).Get(kSchema); !bytes.Equal(v, u64(SchemaVersion)) {
			t.Errorf("schema after migration = %x, want %d", v, SchemaVersion)
		}
		if tx.Bucket(bResets) == nil {
			t.Error("resets/ was not created")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.BadgeSecret(), secret) {
		t.Error("the badge secret changed in the migration")
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// A version 3 file indexed open sessions by time; version 4 takes them out
// of the indexes (they join when they end), and the queries still see each
// session once.
func TestMigrateFromVersion3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	m, err := s.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := s.CreateMember(ctx, fablab.Member{Email: "ada@example.org", Name: "Ada", Group: "student"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ended, err := s.OpenSession(ctx, fablab.Session{MachineID: m.ID, MemberID: mem.ID, DeviceID: "d", Started: start, Until: start.Add(time.Hour)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloseSession(ctx, ended.ID, start.Add(time.Minute), fablab.EndTapOut, 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	open, err := s.OpenSession(ctx, fablab.Session{MachineID: m.ID, MemberID: mem.ID, DeviceID: "d", Started: start.Add(2 * time.Minute), Until: start.Add(time.Hour)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Make it a version 3 file: the open session in the three indexes.
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := indexSession(tx, open); err != nil {
			return err
		}
		return tx.Bucket(bMeta).Put(kSchema, u64(3))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	if s, err = Open(path, Options{}); err != nil {
		t.Fatalf("open a version 3 file: %v", err)
	}
	defer s.Close()
	indexed := 0
	if err := s.db.View(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bSessionsMach, bSessionsStart, bSessionsMember} {
			indexed += tx.Bucket(b).Stats().KeyN
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if indexed != 3 {
		t.Errorf("%d index entries after the migration, want 3 (the ended session's)", indexed)
	}
	for name, q := range map[string]func() ([]fablab.Session, error){
		"machine": func() ([]fablab.Session, error) { return s.SessionsOfMachine(ctx, m.ID, start, start.Add(time.Hour)) },
		"member":  func() ([]fablab.Session, error) { return s.SessionsOfMember(ctx, mem.ID, start, start.Add(time.Hour)) },
		"start":   func() ([]fablab.Session, error) { return s.SessionsStarted(ctx, start, start.Add(time.Hour), 10) },
	} {
		got, err := q()
		if err != nil || len(got) != 2 || got[0].ID != ended.ID || got[1].ID != open.ID {
			t.Errorf("by %s: %+v (%v), want the ended then the open session", name, got, err)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// A file left at schema 4 (before calendar feeds) gets the feed buckets at
// open, and feeds work on it.
func TestMigrateFromVersion4(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v4.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		for _, m := range migrations[:4] {
			if err := m(tx); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{bFeeds, bFeedsMember} { // version 4 had neither
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bMeta).Put(kSchema, u64(4))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("open a version 4 file: %v", err)
	}
	defer s.Close()
	m, err := s.CreateMember(t.Context(), fablab.Member{Email: "ada@example.org", Name: "Ada", Group: "student"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutCalendarFeed(t.Context(), m.ID, [32]byte{1}); err != nil {
		t.Fatalf("a feed on a migrated file: %v", err)
	}
	if _, err := s.CalendarFeedContents(t.Context(), [32]byte{1}, FeedWindow{Now: time.Now(), From: time.Now(), To: time.Now().Add(time.Hour), Limit: 10}); err != nil {
		t.Errorf("read the feed back: %v", err)
	}
}
