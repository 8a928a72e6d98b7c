package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// previousRelease is the data file of the release before this schema,
// written by that release's own code (scripts/upgrade-fixture.sh: its demo
// lab with taps, sessions, an unknown badge and a calendar feed).
const (
	previousRelease       = "testdata/upgrade/schema-v5.db.gz"
	previousSchemaVersion = 5
)

// keptBuckets are the buckets whose records the upgrade must carry over
// byte for byte: the lab's people, machines, calendar and history.
var keptBuckets = []string{
	"members", "members_email", "organisations", "trainings", "qualifications", "badges", "badges_member",
	"machines", "bookings", "bookings_machine", "bookings_member", "slots", "devices", "machine_device",
	"sessions", "sessions_machine", "sessions_member", "sessions_start", "audit", "taps_seen", "unknown_taps",
	"tokens", "feeds", "feeds_member",
}

// TestUpgradeFromPreviousRelease opens a data file the previous release
// wrote: `fabgate check` migrates it and finds it sound, nothing the lab
// had is lost or changed, and the sessions it ran are billed once by the
// new ledger.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	data := t.TempDir()
	path := filepath.Join(data, "fabgate.db")
	gunzipFile(t, previousRelease, path)

	before, version := dumpBuckets(t, path)
	if version != previousSchemaVersion {
		t.Fatalf("%s has schema version %d, want %d", previousRelease, version, previousSchemaVersion)
	}
	if len(before["sessions"]) == 0 || len(before["bookings"]) == 0 || len(before["audit"]) == 0 || len(before["feeds"]) == 0 {
		t.Fatalf("%s lacks the records the test is about: %d sessions, %d bookings, %d audit events, %d feeds", previousRelease,
			len(before["sessions"]), len(before["bookings"]), len(before["audit"]), len(before["feeds"]))
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"check", "--data", data}, nil, &out, io.Discard, envOf(nil)); err != nil || !strings.HasSuffix(out.String(), ": ok\n") {
		t.Fatalf("fabgate check on the previous release's file: %v %q", err, out.String())
	}
	after, version := dumpBuckets(t, path)
	if version != bolt.SchemaVersion {
		t.Fatalf("after check the file has schema version %d, want %d", version, bolt.SchemaVersion)
	}
	for _, name := range keptBuckets {
		for k, v := range before[name] {
			got, ok := after[name][k]
			switch {
			case !ok:
				t.Errorf("%s/%x was lost by the upgrade", name, k)
			case got != v:
				t.Errorf("%s/%x changed by the upgrade:\n was %q\n now %q", name, k, v, got)
			}
		}
		if len(after[name]) != len(before[name]) {
			t.Errorf("%s holds %d records after the upgrade, %d before", name, len(after[name]), len(before[name]))
		}
	}

	// The sessions the previous release ran wait for the new ledger, which
	// bills each once.
	if got, want := len(after["sessions_unbilled"]), len(before["sessions"]); got != want {
		t.Fatalf("%d sessions wait to be billed after the upgrade, want all %d", got, want)
	}
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	billed, left, err := s.BillSessions(ctx, 1000)
	if err != nil || billed != len(before["sessions"]) || left != 0 {
		t.Fatalf("billing the previous release's sessions: %d billed, %d left, %v; want %d, 0", billed, left, err, len(before["sessions"]))
	}
	if again, _, err := s.BillSessions(ctx, 1000); err != nil || again != 0 {
		t.Fatalf("a second billing run charged %d sessions (%v), want none", again, err)
	}
	charges, err := s.Charges(ctx, bolt.ChargeFilter{})
	if err != nil || len(charges) != billed {
		t.Fatalf("%d charges (%v) for %d billed sessions", len(charges), err, billed)
	}
	for _, c := range charges {
		if c.Kind != fablab.ChargeSession || before["sessions"][string(binary.BigEndian.AppendUint64(nil, uint64(c.SessionID)))] == "" {
			t.Errorf("charge %s is not one of the previous release's sessions: %+v", c.ID, c)
		}
	}
	if err := s.CheckInvariants(ctx); err != nil {
		t.Fatalf("after billing: %v", err)
	}
}

func gunzipFile(t *testing.T, from, to string) {
	t.Helper()
	f, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// dumpBuckets reads every top-level bucket of a data file (key → value)
// and its schema version, read-only.
func dumpBuckets(t *testing.T, path string) (map[string]map[string]string, uint64) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]map[string]string{}
	var version uint64
	err = db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket([]byte("meta")).Get([]byte("schema")); len(v) == 8 {
			version = binary.BigEndian.Uint64(v)
		}
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			m := map[string]string{}
			out[string(name)] = m
			return b.ForEach(func(k, v []byte) error {
				m[string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, version
}
