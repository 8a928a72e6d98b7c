package bolt

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// CheckFile passes a data file without writing a byte of it (an older
// schema stays older: migrating is Open's), and refuses what this code
// could not open: a newer schema, a bbolt file that is not FabGate's, a
// truncated file, a file a process holds.
func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s, err := Open(good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMember(t.Context(), fablab.Member{Email: "ada@example.org", Name: "Ada", Group: "student"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	withSchema := func(name string, v uint64) string {
		t.Helper()
		data, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bMeta).Put(kSchema, u64(v)) }); err != nil {
			t.Fatal(err)
		}
		return path
	}
	older := withSchema("older.db", SchemaVersion-1)
	newer := withSchema("newer.db", SchemaVersion+1)

	foreign := filepath.Join(dir, "foreign.db")
	db, err := bbolt.Open(foreign, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	whole, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.db")
	if err := os.WriteFile(truncated, whole[:len(whole)/3], 0o600); err != nil {
		t.Fatal(err)
	}

	held := filepath.Join(dir, "held.db")
	hs, err := Open(held, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()

	for _, tc := range []struct {
		name, path, wantErr string
	}{
		{"current schema", good, ""},
		{"older schema", older, ""},
		{"newer schema", newer, "newer than this fabgate"},
		{"not FabGate's", foreign, "not a FabGate data file"},
		{"truncated", truncated, "cut short"},
		{"held by a process", held, "locked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(tc.path)
			err := CheckFile(tc.path)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("CheckFile: %v, want %q", err, tc.wantErr)
			}
			if after, _ := os.ReadFile(tc.path); !bytes.Equal(before, after) {
				t.Error("CheckFile changed the file")
			}
		})
	}
}

// A data file cut short (a copy that did not finish) is refused by Open with
// a message, where bbolt would fault on its first page past the end.
func TestOpenRefusesFileCutShort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fabgate.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMember(t.Context(), fablab.Member{Email: "ada@example.org", Name: "Ada", Group: "student"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "cut short") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a file cut short: %v, want a 'cut short' error", err)
	}
}
