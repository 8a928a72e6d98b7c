package bolt_test

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// invariantLab is a small lab with one of everything the invariants
// speak of: bookings (confirmed and cancelled), an open session, billed
// and unbilled ended sessions, charges and an issued invoice.
type invariantLab struct {
	path                   string
	machine, member        fablab.ID
	booking, cancelled     fablab.Booking
	open, billed, unbilled fablab.Session
	charge                 fablab.Charge
	invoice                fablab.Invoice
}

func newInvariantLab(t *testing.T) invariantLab {
	t.Helper()
	s, clock, m := newLedger(t)
	ctx := t.Context()
	mk := member(t, s, fablab.Member{Group: "student"})
	lab := invariantLab{path: s.Path(), machine: m.ID, member: mk.ID}
	clock.Set(inParis(2026, 3, 1, 8, 0))
	lab.booking = mustBook(t, s, m.ID, mk.ID, fablab.Interval{Start: inParis(2026, 3, 10, 10, 0), End: inParis(2026, 3, 10, 12, 0)})
	lab.cancelled = mustBook(t, s, m.ID, mk.ID, fablab.Interval{Start: inParis(2026, 3, 11, 10, 0), End: inParis(2026, 3, 11, 11, 0)})
	mustSetState(t, s, lab.cancelled.ID, fablab.BookingCancelled)
	lab.charge = use(t, s, m.ID, mk.ID, inParis(2026, 3, 12, 14, 0), 90)
	lab.billed, _ = s.Session(ctx, lab.charge.SessionID)
	invs, _ := run(t, s, clock, "2026-03", inParis(2026, 4, 1, 6, 0))
	if len(invs) != 1 {
		t.Fatalf("March's run issued %d invoices, want 1", len(invs))
	}
	lab.invoice = invs[0]
	end := inParis(2026, 4, 2, 11, 0)
	var err error
	lab.unbilled, err = s.RecordSession(ctx, fablab.Session{MachineID: m.ID, MemberID: mk.ID, DeviceID: "laser-1",
		Started: inParis(2026, 4, 2, 10, 0), Until: end, Ended: &end, EndReason: fablab.EndTapOut, Confirmed: true, Billable: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lab.open, err = s.OpenSession(ctx, fablab.Session{MachineID: m.ID, MemberID: mk.ID, DeviceID: "laser-1",
		Started: inParis(2026, 4, 3, 10, 0), Until: inParis(2026, 4, 3, 12, 0), Confirmed: true, Billable: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckInvariants(ctx); err != nil {
		t.Fatalf("a lab the store wrote breaks its invariants: %v", err)
	}
	return lab
}

// Raw key encodings of the stored format (see the schema in store.go).
func kid(id fablab.ID) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }
func ktime(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.Unix())^(1<<63))
}
func kcat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
func kpayer(p fablab.Payer) []byte {
	kind := byte(1)
	if p.Kind == fablab.PayerIsOrganisation {
		kind = 2
	}
	return append([]byte{kind}, kid(p.ID)...)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckInvariantsFindsEachViolation breaks a sound file in one place at
// a time, as a bug or a half-written transaction would, and checks that the
// invariant checker names what is wrong (and that bbolt's own check, which
// knows nothing of the domain, does not).
func TestCheckInvariantsFindsEachViolation(t *testing.T) {
	lab := newInvariantLab(t)
	sound, err := os.ReadFile(lab.path)
	if err != nil {
		t.Fatal(err)
	}
	put := func(t *testing.T, tx *bbolt.Tx, bucket string, k, v []byte) {
		t.Helper()
		if err := tx.Bucket([]byte(bucket)).Put(k, v); err != nil {
			t.Fatal(err)
		}
	}
	del := func(t *testing.T, tx *bbolt.Tx, bucket string, k []byte) {
		t.Helper()
		if tx.Bucket([]byte(bucket)).Get(k) == nil {
			t.Fatalf("%s has no key %x to delete", bucket, k)
		}
		if err := tx.Bucket([]byte(bucket)).Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	b, c := lab.booking, lab.charge
	cases := []struct {
		name    string
		want    string
		corrupt func(t *testing.T, tx *bbolt.Tx)
	}{
		{"overlapping confirmed bookings", "overlap", func(t *testing.T, tx *bbolt.Tx) {
			// A second booking, fully indexed, half an hour into the first.
			o := b
			o.ID, o.Start, o.End = 99, b.Start.Add(30*time.Minute), b.End.Add(30*time.Minute)
			put(t, tx, "bookings", kid(o.ID), mustJSON(t, o))
			put(t, tx, "bookings_machine", kcat(kid(o.MachineID), ktime(o.Start), kid(o.ID)), nil)
			put(t, tx, "bookings_member", kcat(kid(o.MemberID), ktime(o.Start), kid(o.ID)), nil)
			put(t, tx, "slots", kcat(kid(o.MachineID), ktime(o.Start)), kcat(kid(o.ID), ktime(o.End)))
		}},
		{"booking missing from an index", "index bookings_member: no entry for booking " + b.ID.String(), func(t *testing.T, tx *bbolt.Tx) {
			del(t, tx, "bookings_member", kcat(kid(b.MemberID), ktime(b.Start), kid(b.ID)))
		}},
		{"cancelled booking still holding its slot", "index slots: stray entry", func(t *testing.T, tx *bbolt.Tx) {
			x := lab.cancelled
			put(t, tx, "slots", kcat(kid(x.MachineID), ktime(x.Start)), kcat(kid(x.ID), ktime(x.End)))
		}},
		{"two open sessions on one machine", "two open sessions", func(t *testing.T, tx *bbolt.Tx) {
			o := lab.open
			o.ID = 99
			put(t, tx, "sessions", kid(o.ID), mustJSON(t, o))
		}},
		{"open session missing from sessions_open", "open session " + lab.open.ID.String() + " of machine", func(t *testing.T, tx *bbolt.Tx) {
			del(t, tx, "sessions_open", kid(lab.machine))
		}},
		{"ended session lost to billing", "neither billed nor waiting", func(t *testing.T, tx *bbolt.Tx) {
			del(t, tx, "sessions_unbilled", kid(lab.unbilled.ID))
		}},
		{"ended session missing from a time index", "index sessions_start: no entry for ended session " + lab.unbilled.ID.String(), func(t *testing.T, tx *bbolt.Tx) {
			del(t, tx, "sessions_start", kcat(ktime(lab.unbilled.Started), kid(lab.unbilled.ID)))
		}},
		{"session billed twice", "billed twice", func(t *testing.T, tx *bbolt.Tx) {
			d := c
			d.ID = 99
			at, pk := ktime(d.At), kpayer(d.Payer)
			put(t, tx, "charges", kid(d.ID), mustJSON(t, d))
			put(t, tx, "charges_at", kcat(at, kid(d.ID)), tx.Bucket([]byte("charges_at")).Get(kcat(at, kid(c.ID))))
			put(t, tx, "charges_payer", kcat(pk, at, kid(d.ID)), nil)
			put(t, tx, "charges_member", kcat(kid(d.MemberID), at, kid(d.ID)), nil)
			put(t, tx, "charges_uninvoiced", kcat(pk, at, kid(d.ID)), nil)
		}},
		{"billed session waiting to be billed again", "index sessions_unbilled: stray entry", func(t *testing.T, tx *bbolt.Tx) {
			put(t, tx, "sessions_unbilled", kid(lab.billed.ID), nil)
		}},
		{"session's charge link lost", "bills session " + lab.billed.ID.String() + ", whose charge is 0", func(t *testing.T, tx *bbolt.Tx) {
			s := lab.billed
			s.ChargeID = 0
			put(t, tx, "sessions", kid(s.ID), mustJSON(t, s))
		}},
		{"invoiced charge waiting to be invoiced again", "on invoice " + lab.invoice.ID.String() + " and still waiting", func(t *testing.T, tx *bbolt.Tx) {
			put(t, tx, "charges_uninvoiced", kcat(kpayer(c.Payer), ktime(c.At), kid(c.ID)), nil)
		}},
		{"a gap in the invoice numbers", "number 2 of 2026 is missing", func(t *testing.T, tx *bbolt.Tx) {
			put(t, tx, "invoice_seq", binary.BigEndian.AppendUint64(nil, 2026), binary.BigEndian.AppendUint64(nil, 3))
			inv := lab.invoice
			inv.ID, inv.Number = 99, fablab.InvoiceNumber("FG", 2026, 3)
			inv.Lines = nil
			inv.Totals()
			put(t, tx, "invoices", kid(inv.ID), mustJSON(t, inv))
			put(t, tx, "invoices_number", []byte(inv.Number), kid(inv.ID))
		}},
		{"invoice totals not adding up", "but its lines make", func(t *testing.T, tx *bbolt.Tx) {
			inv := lab.invoice
			inv.TotalInclCents++
			put(t, tx, "invoices", kid(inv.ID), mustJSON(t, inv))
		}},
		{"invoice line whose charge was not taken", "is not recorded as taken by it", func(t *testing.T, tx *bbolt.Tx) {
			del(t, tx, "invoice_charges", kid(c.ID))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fabgate.db")
			if err := os.WriteFile(path, sound, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bbolt.Tx) error { tc.corrupt(t, tx); return nil }); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			s, err := bolt.Open(path, bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Check(); err != nil {
				t.Fatalf("bbolt's check should find nothing wrong in the pages: %v", err)
			}
			err = s.CheckInvariants(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckInvariants = %v, want a violation containing %q", err, tc.want)
			}
		})
	}
}

// TestCheckRelays: a relay on is sound only on the device of an open
// session.
func TestCheckRelays(t *testing.T) {
	lab := newInvariantLab(t)
	sound, err := os.ReadFile(lab.path)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fabgate.db")
	if err := os.WriteFile(path, sound, 0o600); err != nil {
		t.Fatal(err)
	}
	st, closeSt := openFile(t, path, bolt.Options{})
	defer closeSt()
	if err := st.CheckRelays(t.Context(), map[string]bool{"laser-1": true, "cnc-1": false}); err != nil {
		t.Fatalf("laser-1 is on for open session %s: %v", lab.open.ID, err)
	}
	err = st.CheckRelays(t.Context(), map[string]bool{"laser-1": true, "cnc-1": true})
	if err == nil || !strings.Contains(err.Error(), "device cnc-1 is on with no open session") {
		t.Fatalf("CheckRelays with cnc-1 on = %v, want cnc-1 named", err)
	}
}
