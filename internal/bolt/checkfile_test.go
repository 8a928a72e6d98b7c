package bolt

import (
	"bytes"
	"fmt"
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

// A data file cut short (a copy that did not finish), wherever the cut
// falls, is refused by Open and CheckFile with a message, where bbolt would
// fault or panic on the first page past its end; a cut that loses only
// the file's unused tail keeps a file that opens and checks clean.
func TestOpenRefusesFileCutShort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "whole.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := s.CreateMember(t.Context(), fablab.Member{Email: fmt.Sprintf("m%d@example.org", i), Name: "Ada", Group: "student"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	refused := 0
	for n := 2 * page; n < len(whole); n += page {
		cut := filepath.Join(dir, fmt.Sprintf("cut-%d.db", n))
		if err := os.WriteFile(cut, whole[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		errCheck := CheckFile(cut)
		s, err := Open(cut, Options{})
		if err == nil {
			if cerr := s.Check(); cerr != nil || errCheck != nil {
				t.Errorf("cut at %d: opens, but Check: %v, CheckFile: %v", n, cerr, errCheck)
			}
			s.Close()
			continue
		}
		refused++
		if !strings.Contains(err.Error(), "cut short") || errCheck == nil || !strings.Contains(errCheck.Error(), "cut short") {
			t.Errorf("cut at %d of %d: Open: %v; CheckFile: %v; want both to say 'cut short'", n, len(whole), err, errCheck)
		}
	}
	if refused == 0 {
		t.Fatalf("no cut of a %d-byte file was refused", len(whole))
	}
}
