package main

import (
	"context"
	"encoding/binary"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// TestCheckReportsBrokenInvariants: `fabgate check` fails on a file whose
// pages are sound but whose lab is not (a booking missing from the
// machine's calendar index), naming what is wrong.
func TestCheckReportsBrokenInvariants(t *testing.T) {
	data := t.TempDir()
	path := filepath.Join(data, "fabgate.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	m, err := s.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter})
	if err != nil {
		t.Fatal(err)
	}
	mk, err := s.CreateMember(ctx, fablab.Member{Name: "Ada", Email: "ada@example.org", Group: "student"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	b, err := s.CreateBooking(ctx, fablab.Booking{MachineID: m.ID, MemberID: mk.ID, Start: start, End: start.Add(time.Hour), CreatedBy: mk.ID},
		func(bolt.BookingContext) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"check", "--data", data}, nil, &out, io.Discard, envOf(nil)); err != nil {
		t.Fatalf("check of a sound file: %v", err)
	}

	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64(nil, uint64(m.ID))
	key = binary.BigEndian.AppendUint64(key, uint64(start.Unix())^(1<<63))
	key = binary.BigEndian.AppendUint64(key, uint64(b.ID))
	err = db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("bookings_machine")).Delete(key) })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"check", "--data", data}, nil, io.Discard, io.Discard, envOf(nil))
	want := "index bookings_machine: no entry for booking " + b.ID.String()
	if err == nil || !strings.Contains(err.Error(), "breaks the lab's invariants") || !strings.Contains(err.Error(), want) {
		t.Fatalf("check of a file missing an index entry = %v, want %q", err, want)
	}
}
