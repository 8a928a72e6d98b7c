package bolt

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
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
