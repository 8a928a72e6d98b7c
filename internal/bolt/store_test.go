package bolt_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
)

// rawSchema reads meta/schema of a closed data file with bbolt itself.
func rawSchema(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	defer db.Close()
	var v uint64
	if err := db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("meta")).Get([]byte("schema"))
		if len(b) != 8 {
			t.Fatalf("meta/schema is %d bytes, want 8", len(b))
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// setRawSchema writes meta/schema of a closed data file with bbolt itself.
func setRawSchema(t *testing.T, path string, v uint64) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, v))
	}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenNewFile(t *testing.T) {
	path := tempDBPath(t)
	s, closeFn := openFile(t, path, bolt.Options{})
	ctx := t.Context()

	if got := len(s.BadgeSecret()); got != 32 {
		t.Errorf("badge secret is %d bytes, want 32", got)
	}
	if bytes.Equal(s.BadgeSecret(), make([]byte, 32)) {
		t.Errorf("badge secret is all zeros")
	}
	st, err := s.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	def := fablab.DefaultSettings()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"time zone", st.TimeZone, "Europe/Paris"},
		{"currency", st.Currency, "EUR"},
		{"location", st.Location().String(), "Europe/Paris"},
		{"opening hours", st.OpeningHours, def.OpeningHours},
		{"default rules", st.DefaultRules, fablab.DefaultBookingRules()},
		{"invoice prefix", st.InvoicePrefix, def.InvoicePrefix},
		{"vat mention", st.VATMention, def.VATMention},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default settings %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if n := len(st.OpeningHours.Saturday); n != 1 || st.OpeningHours.Saturday[0] != (fablab.TimeRange{Open: 10 * 60, Close: 18 * 60}) {
		t.Errorf("saturday = %v, want 10:00–18:00", st.OpeningHours.Saturday)
	}
	gs, err := s.TariffGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gs, fablab.DefaultTariffGroups()) {
		t.Errorf("tariff groups = %v, want the defaults", gs)
	}
	if n, err := s.CountMembers(ctx); err != nil || n != 0 {
		t.Errorf("CountMembers = %d, %v; want 0", n, err)
	}
	closeFn()
	if v := rawSchema(t, path); v != bolt.SchemaVersion {
		t.Errorf("schema version = %d, want %d", v, bolt.SchemaVersion)
	}
}

func TestOpenReopenKeepsSecretAndData(t *testing.T) {
	path := tempDBPath(t)
	clock := bolttest.NewClock(t0)
	s, closeFn := openFile(t, path, bolt.Options{Now: clock.Now})
	ctx := t.Context()
	secret := bytes.Clone(s.BadgeSecret())
	m := mustMember(t, s, "Ada")
	laser := mustMachine(t, s, "Laser")
	if _, err := s.UpdateSettings(ctx, func(st *fablab.Settings) error { st.Name = "Lab du Parc"; return nil }); err != nil {
		t.Fatal(err)
	}
	closeFn()

	s2, closeFn2 := openFile(t, path, bolt.Options{Now: clock.Now})
	defer closeFn2()
	if !bytes.Equal(s2.BadgeSecret(), secret) {
		t.Errorf("badge secret changed on reopen")
	}
	got, err := s2.Member(ctx, m.ID)
	if err != nil {
		t.Fatalf("member after reopen: %v", err)
	}
	if got.Email != m.Email || !got.CreatedAt.Equal(m.CreatedAt) {
		t.Errorf("member after reopen = %+v, want %+v", got, m)
	}
	if got, err := s2.Machine(ctx, laser.ID); err != nil || got.Name != "Laser" || got.Rules != laser.Rules {
		t.Errorf("machine after reopen = %+v, %v", got, err)
	}
	st, err := s2.Settings(ctx)
	if err != nil || st.Name != "Lab du Parc" {
		t.Errorf("settings name after reopen = %q, %v", st.Name, err)
	}
	// A new id does not reuse the old one.
	if m2 := mustMember(t, s2, "Grace"); m2.ID <= m.ID {
		t.Errorf("new member id %s after reopen, want > %s", m2.ID, m.ID)
	}
	if other := bolttest.Open(t, nil); bytes.Equal(other.BadgeSecret(), secret) {
		t.Errorf("two labs share a badge secret")
	}
}

func TestOpenSchemaVersion(t *testing.T) {
	tests := []struct {
		name    string
		version uint64
		wantErr bool
	}{
		{name: "current", version: bolt.SchemaVersion},
		{name: "next", version: bolt.SchemaVersion + 1, wantErr: true},
		{name: "far future", version: 1 << 40, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempDBPath(t)
			_, closeFn := openFile(t, path, bolt.Options{})
			closeFn()
			setRawSchema(t, path, tt.version)

			s, err := bolt.Open(path, bolt.Options{})
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				if err := s.Check(); err != nil {
					t.Error(err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("open of a file with schema %d succeeded", tt.version)
			}
			if msg := err.Error(); !strings.Contains(msg, "upgrade") || !strings.Contains(msg, "newer") {
				t.Errorf("error %q should say the file is newer and to upgrade", msg)
			}
			if v := rawSchema(t, path); v != tt.version {
				t.Errorf("refused open changed the schema to %d", v)
			}
		})
	}
}

func TestOpenLocked(t *testing.T) {
	s := bolttest.Open(t, nil)
	begin := time.Now()
	s2, err := bolt.Open(s.Path(), bolt.Options{Timeout: 100 * time.Millisecond})
	elapsed := time.Since(begin)
	if err == nil {
		s2.Close()
		t.Fatal("second open of a locked file succeeded")
	}
	wantCode(t, err, fablab.ECONFLICT)
	if msg := fablab.ErrorMessage(err); !strings.Contains(msg, "lock") {
		t.Errorf("message %q does not mention the lock", msg)
	}
	if elapsed > 5*time.Second {
		t.Errorf("locked open took %v with a 100ms timeout", elapsed)
	}
	// The first store is untouched and still works.
	if _, err := s.Settings(t.Context()); err != nil {
		t.Errorf("first store after refused open: %v", err)
	}
}

func TestSnapshotIsOpenable(t *testing.T) {
	s, _ := newStore(t)
	m := mustMember(t, s, "Ada")
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil || int64(buf.Len()) != n {
		t.Fatalf("WriteTo = %d, %v; buffer %d", n, err, buf.Len())
	}
	path := tempDBPath(t)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, _ := openFile(t, path, bolt.Options{})
	if _, err := s2.Member(t.Context(), m.ID); err != nil {
		t.Errorf("member in snapshot: %v", err)
	}
	if !bytes.Equal(s2.BadgeSecret(), s.BadgeSecret()) {
		t.Errorf("snapshot has another badge secret")
	}
}
