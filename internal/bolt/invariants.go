package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// The invariants of the domain (DESIGN §2) as they stand in the file, read
// in one transaction: what `fabgate check`, the tests' stores at cleanup,
// the crash loop and the fault tests all verify, so that "nothing was lost
// or half-written" means the same everywhere.
//
//   - bookings: confirmed (and completed) bookings of one machine never
//     overlap; every booking is in bookings_machine/ and bookings_member/
//     under its start, the occupying ones in slots/ with their end, and
//     those indexes hold nothing else; a booking's machine and member exist.
//   - sessions: at most one open session per machine, and sessions_open/
//     names exactly the open sessions; ended sessions, and only they, are in
//     the three time indexes; an end is not before its start and has a
//     valid reason.
//   - billing: every ended session is billed exactly once or waits in
//     sessions_unbilled/ (never both, never an open one there); a billed
//     session, its charge (charges_session/) and its usage record name each
//     other; no session has two charges of its own.
//   - ledger: every charge is in its indexes (charges_at/, charges_payer/,
//     charges_member/); a charge on an invoice is not also waiting to be
//     invoiced; a correction names a charge that exists.
//   - invoices: numbers are unique and gap-free per year up to the year's
//     counter (invoice_seq/); each line's charge is taken by that invoice
//     (invoice_charges/), a charge is on one invoice only, totals add up.
//   - devices: machine_device/ and the machines' device ids agree.
//
// A state the running system passes through is never reported: a closed
// session waiting for the billing job, a charge waiting for its month's
// invoice run. Relays are in the devices, not in the file: see CheckRelays.

// maxViolations bounds the report of a badly broken file.
const maxViolations = 200

type violations struct {
	errs    []error
	dropped int
}

func (v *violations) add(format string, args ...any) {
	if len(v.errs) >= maxViolations {
		v.dropped++
		return
	}
	v.errs = append(v.errs, fmt.Errorf(format, args...))
}

func (v *violations) err() error {
	if v.dropped > 0 {
		v.errs = append(v.errs, fmt.Errorf("… and %d more violations", v.dropped))
	}
	return errors.Join(v.errs...)
}

// CheckInvariants checks the invariants above over the whole store and
// returns every violation found (at most 200 named), nil when all hold. It
// reads everything in one read transaction: for `fabgate check` and tests,
// not for request paths.
func (s *Store) CheckInvariants(ctx context.Context) error {
	var out error
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		out = checkInvariants(tx)
		return nil
	})
	if err != nil {
		return err
	}
	return out
}

// CheckRelays checks that every relay reported on (relayOn: device id →
// the relay is on) belongs to a device with an open session on it: no
// machine is powered without one. Call it once the devices have settled
// (between a lock and its ack the relay is legitimately still on).
func (s *Store) CheckRelays(ctx context.Context, relayOn map[string]bool) error {
	open, err := s.OpenSessions(ctx)
	if err != nil {
		return err
	}
	byDevice := map[string]fablab.ID{}
	for _, sess := range open {
		byDevice[sess.DeviceID] = sess.ID
	}
	var v violations
	for _, dev := range sortedKeys(relayOn) {
		if relayOn[dev] && byDevice[dev] == 0 {
			v.add("relay: device %s is on with no open session on it", dev)
		}
	}
	return v.err()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func checkInvariants(tx *bbolt.Tx) error {
	var v violations
	exists := func(bucket []byte, id fablab.ID) bool { return tx.Bucket(bucket).Get(itob(id)) != nil }
	checkBookings(tx, &v, exists)
	billed := checkSessions(tx, &v, exists)
	checkCharges(tx, &v, exists, billed)
	checkInvoices(tx, &v)
	checkDevices(tx, &v)
	return v.err()
}

// indexKeys returns the keys of an index bucket.
func indexKeys(tx *bbolt.Tx, name []byte) map[string]bool {
	keys := map[string]bool{}
	_ = tx.Bucket(name).ForEach(func(k, _ []byte) error {
		keys[string(k)] = true
		return nil
	})
	return keys
}

// expectIndex checks that index holds exactly the keys want, reporting
// missing and stray entries.
func expectIndex(v *violations, name string, have, want map[string]bool, describe func(k string) string) {
	for k := range want {
		if !have[k] {
			v.add("index %s: no entry for %s", name, describe(k))
		}
	}
	for k := range have {
		if !want[k] {
			v.add("index %s: stray entry %x", name, k)
		}
	}
}

func checkBookings(tx *bbolt.Tx, v *violations, exists func([]byte, fablab.ID) bool) {
	byMachine, byMember, slots := map[string]bool{}, map[string]bool{}, map[string]bool{}
	slotVal := map[string][]byte{}
	names := map[string]fablab.ID{}
	_ = tx.Bucket(bBookings).ForEach(func(k, raw []byte) error {
		var b fablab.Booking
		if err := getJSONBytes(raw, &b); err != nil {
			v.add("booking %s: unreadable: %v", btoi(k), err)
			return nil
		}
		if b.ID != btoi(k) {
			v.add("booking %s: stored under key %s", b.ID, btoi(k))
		}
		if !b.End.After(b.Start) {
			v.add("booking %s: ends at %s, not after its start %s", b.ID, b.End, b.Start)
		}
		switch b.State {
		case fablab.BookingConfirmed, fablab.BookingCancelled, fablab.BookingNoShow, fablab.BookingCompleted:
		default:
			v.add("booking %s: unknown state %q", b.ID, b.State)
		}
		if !exists(bMachines, b.MachineID) {
			v.add("booking %s: machine %s does not exist", b.ID, b.MachineID)
		}
		if !exists(bMembers, b.MemberID) {
			v.add("booking %s: member %s does not exist", b.ID, b.MemberID)
		}
		id, start := itob(b.ID), tkey(b.Start)
		byMachine[string(cat(itob(b.MachineID), start, id))] = true
		byMember[string(cat(itob(b.MemberID), start, id))] = true
		if b.Occupies() {
			k := string(cat(itob(b.MachineID), start))
			if slots[k] {
				v.add("booking %s: machine %s has two occupying bookings starting at %s", b.ID, b.MachineID, b.Start)
			}
			slots[k], slotVal[k] = true, cat(id, tkey(b.End))
			names[k] = b.ID
		}
		return nil
	})
	describe := func(k string) string { return "booking " + btoi([]byte(k)[16:24]).String() }
	expectIndex(v, "bookings_machine", indexKeys(tx, bBookingsMach), byMachine, describe)
	expectIndex(v, "bookings_member", indexKeys(tx, bBookingsMember), byMember, describe)
	expectIndex(v, "slots", indexKeys(tx, bSlots), slots, func(k string) string { return "booking " + names[k].String() })

	// The occupying bookings of each machine, in start order, must not
	// overlap: each ends before the next starts.
	c := tx.Bucket(bSlots).Cursor()
	var prevMachine, prevEnd []byte
	var prevID fablab.ID
	for k, val := c.First(); k != nil; k, val = c.Next() {
		if len(k) != 16 || len(val) != 16 {
			v.add("index slots: malformed entry %x → %x", k, val)
			continue
		}
		if want, ok := slotVal[string(k)]; ok && !bytes.Equal(want, val) {
			v.add("index slots: booking %s's entry says booking %s ending %s", names[string(k)], btoi(val[:8]), fromTkey(val[8:]))
		}
		if bytes.Equal(k[:8], prevMachine) && bytes.Compare(k[8:], prevEnd) < 0 {
			v.add("bookings: confirmed bookings %s and %s of machine %s overlap", prevID, btoi(val[:8]), btoi(k[:8]))
		}
		prevMachine, prevEnd, prevID = bytes.Clone(k[:8]), bytes.Clone(val[8:]), btoi(val[:8])
	}
}

// checkSessions checks the sessions and returns the charge of each billed
// session.
func checkSessions(tx *bbolt.Tx, v *violations, exists func([]byte, fablab.ID) bool) map[fablab.ID]fablab.ID {
	billed := map[fablab.ID]fablab.ID{}
	timeIdx := map[string]map[string]bool{"sessions_machine": {}, "sessions_start": {}, "sessions_member": {}}
	openOn := map[fablab.ID]fablab.ID{} // machine → open session
	unbilled, usage := map[string]bool{}, map[string]bool{}
	_ = tx.Bucket(bSessions).ForEach(func(k, raw []byte) error {
		var s fablab.Session
		if err := getJSONBytes(raw, &s); err != nil {
			v.add("session %s: unreadable: %v", btoi(k), err)
			return nil
		}
		if s.ID != btoi(k) {
			v.add("session %s: stored under key %s", s.ID, btoi(k))
		}
		if !exists(bMachines, s.MachineID) {
			v.add("session %s: machine %s does not exist", s.ID, s.MachineID)
		}
		if !exists(bMembers, s.MemberID) {
			v.add("session %s: member %s does not exist", s.ID, s.MemberID)
		}
		if s.BookingID != 0 && !exists(bBookings, s.BookingID) {
			v.add("session %s: booking %s does not exist", s.ID, s.BookingID)
		}
		if s.Open() {
			if other, ok := openOn[s.MachineID]; ok {
				v.add("sessions: machine %s has two open sessions, %s and %s", s.MachineID, other, s.ID)
			}
			openOn[s.MachineID] = s.ID
			if s.EndReason != "" || s.ChargeID != 0 {
				v.add("session %s: open but has an end reason %q or a charge %s", s.ID, s.EndReason, s.ChargeID)
			}
			return nil
		}
		if s.Ended.Before(s.Started) {
			v.add("session %s: ends at %s, before its start %s", s.ID, s.Ended, s.Started)
		}
		if !s.EndReason.Valid() {
			v.add("session %s: ended with unknown reason %q", s.ID, s.EndReason)
		}
		id, start := itob(s.ID), tkey(s.Started)
		timeIdx["sessions_machine"][string(cat(itob(s.MachineID), start, id))] = true
		timeIdx["sessions_start"][string(cat(start, id))] = true
		timeIdx["sessions_member"][string(cat(itob(s.MemberID), start, id))] = true
		if s.ChargeID == 0 {
			unbilled[string(id)] = true
		} else {
			billed[s.ID] = s.ChargeID
			usage[string(cat(start, id))] = true
		}
		return nil
	})
	for name, want := range timeIdx {
		expectIndex(v, name, indexKeys(tx, []byte(name)), want, func(k string) string {
			return "ended session " + btoi([]byte(k)[len(k)-8:]).String()
		})
	}
	expectIndex(v, "sessions_unbilled", indexKeys(tx, bSessionsUnbilled), unbilled, func(k string) string {
		return "ended session " + btoi([]byte(k)).String() + " (neither billed nor waiting to be)"
	})
	expectIndex(v, "usage", indexKeys(tx, bUsage), usage, func(k string) string {
		return "billed session " + btoi([]byte(k)[8:]).String()
	})

	// sessions_open/ names exactly the open sessions, under their machine.
	indexed := map[fablab.ID]bool{}
	_ = tx.Bucket(bSessionsOpen).ForEach(func(k, val []byte) error {
		machine, id := btoi(k), btoi(val)
		indexed[machine] = true
		if openOn[machine] != id {
			v.add("index sessions_open: machine %s names session %s, but its open session is %s", machine, id, openOn[machine])
		}
		return nil
	})
	for machine, id := range openOn {
		if !indexed[machine] {
			v.add("index sessions_open: open session %s of machine %s is missing", id, machine)
		}
	}
	return billed
}

func checkCharges(tx *bbolt.Tx, v *violations, exists func([]byte, fablab.ID) bool, billed map[fablab.ID]fablab.ID) {
	at, payer, member := map[string]bool{}, map[string]bool{}, map[string]bool{}
	uninvoiced := indexKeys(tx, bChargesUninvoiced)
	ofSession := map[fablab.ID]fablab.ID{} // session → its own charge, from the charges
	_ = tx.Bucket(bCharges).ForEach(func(k, raw []byte) error {
		var c fablab.Charge
		if err := getJSONBytes(raw, &c); err != nil {
			v.add("charge %s: unreadable: %v", btoi(k), err)
			return nil
		}
		if c.ID != btoi(k) {
			v.add("charge %s: stored under key %s", c.ID, btoi(k))
		}
		id, t, pk := itob(c.ID), tkey(c.At), payerKey(c.Payer)
		at[string(cat(t, id))] = true
		payer[string(cat(pk, t, id))] = true
		member[string(cat(itob(c.MemberID), t, id))] = true
		inv := tx.Bucket(bInvoiceCharges).Get(id)
		if inv != nil && uninvoiced[string(cat(pk, t, id))] {
			v.add("charge %s: on invoice %s and still waiting to be invoiced", c.ID, btoi(inv))
		}
		switch c.Kind {
		case fablab.ChargeSession:
			if other, ok := ofSession[c.SessionID]; ok {
				v.add("session %s: billed twice, by charges %s and %s", c.SessionID, other, c.ID)
			}
			ofSession[c.SessionID] = c.ID
			if got := billed[c.SessionID]; got != c.ID {
				v.add("charge %s: bills session %s, whose charge is %s", c.ID, c.SessionID, got)
			}
		case fablab.ChargeNoShow:
			if got := tx.Bucket(bChargesBooking).Get(itob(c.BookingID)); got == nil || btoi(got) != c.ID {
				v.add("charge %s: the no-show fee of booking %s is not in charges_booking", c.ID, c.BookingID)
			}
		case fablab.ChargeCorrection:
			if c.Corrects != 0 && !exists(bCharges, c.Corrects) {
				v.add("charge %s: corrects charge %s, which does not exist", c.ID, c.Corrects)
			}
		default:
			v.add("charge %s: unknown kind %q", c.ID, c.Kind)
		}
		return nil
	})
	describe := func(k string) string { return "charge " + btoi([]byte(k)[len(k)-8:]).String() }
	expectIndex(v, "charges_at", indexKeys(tx, bChargesAt), at, describe)
	expectIndex(v, "charges_payer", indexKeys(tx, bChargesPayer), payer, describe)
	expectIndex(v, "charges_member", indexKeys(tx, bChargesMember), member, describe)
	for k := range uninvoiced {
		if !payer[k] {
			v.add("index charges_uninvoiced: stray entry %x", k)
		}
	}
	for sess, charge := range billed {
		if ofSession[sess] != charge {
			v.add("session %s: billed by charge %s, which is not a charge of it", sess, charge)
		}
	}
	_ = tx.Bucket(bChargesSession).ForEach(func(k, val []byte) error {
		if billed[btoi(k)] != btoi(val) {
			v.add("index charges_session: session %s → charge %s, but the session's charge is %s", btoi(k), btoi(val), billed[btoi(k)])
		}
		return nil
	})
	for sess, charge := range ofSession {
		if got := tx.Bucket(bChargesSession).Get(itob(sess)); got == nil || btoi(got) != charge {
			v.add("index charges_session: no entry for session %s's charge %s", sess, charge)
		}
	}
}

func checkInvoices(tx *bbolt.Tx, v *violations) {
	numbers := map[int]map[uint64]string{} // year → n → number
	taken := map[fablab.ID]fablab.ID{}     // charge → invoice whose lines hold it
	_ = tx.Bucket(bInvoices).ForEach(func(k, raw []byte) error {
		var inv fablab.Invoice
		if err := getJSONBytes(raw, &inv); err != nil {
			v.add("invoice %s: unreadable: %v", btoi(k), err)
			return nil
		}
		if inv.ID != btoi(k) {
			v.add("invoice %s: stored under key %s", inv.ID, btoi(k))
		}
		if got := tx.Bucket(bInvoicesNumber).Get([]byte(inv.Number)); got == nil || btoi(got) != inv.ID {
			v.add("invoice %s: its number %s is not in invoices_number", inv.ID, inv.Number)
		}
		year, n, ok := parseInvoiceNumber(inv.Number)
		if !ok {
			v.add("invoice %s: malformed number %q", inv.ID, inv.Number)
		} else {
			if numbers[year] == nil {
				numbers[year] = map[uint64]string{}
			}
			if other, dup := numbers[year][n]; dup {
				v.add("invoices: %s and %s share sequence number %d of %d", other, inv.Number, n, year)
			}
			numbers[year][n] = inv.Number
		}
		want := inv
		want.Lines = append([]fablab.InvoiceLine(nil), inv.Lines...)
		want.Totals()
		if want.TotalExclCents != inv.TotalExclCents || want.TotalVATCents != inv.TotalVATCents || want.TotalInclCents != inv.TotalInclCents {
			v.add("invoice %s: totals %d + %d = %d, but its lines make %d + %d = %d", inv.Number,
				inv.TotalExclCents, inv.TotalVATCents, inv.TotalInclCents, want.TotalExclCents, want.TotalVATCents, want.TotalInclCents)
		}
		for _, l := range inv.Lines {
			if other, dup := taken[l.ChargeID]; dup {
				v.add("charge %s: on invoices %s and %s", l.ChargeID, other, inv.ID)
			}
			taken[l.ChargeID] = inv.ID
			if got := tx.Bucket(bInvoiceCharges).Get(itob(l.ChargeID)); got == nil || btoi(got) != inv.ID {
				v.add("invoice %s: its line's charge %s is not recorded as taken by it", inv.Number, l.ChargeID)
			}
			if tx.Bucket(bCharges).Get(itob(l.ChargeID)) == nil {
				v.add("invoice %s: its line's charge %s does not exist", inv.Number, l.ChargeID)
			}
		}
		return nil
	})
	_ = tx.Bucket(bInvoiceCharges).ForEach(func(k, val []byte) error {
		if tx.Bucket(bInvoices).Get(val) == nil {
			v.add("index invoice_charges: charge %s → invoice %s, which does not exist", btoi(k), btoi(val))
		}
		return nil
	})
	// Gap-free: each year's numbers are exactly 1 … the year's counter.
	seq := map[int]uint64{}
	_ = tx.Bucket(bInvoiceSeq).ForEach(func(k, val []byte) error {
		if len(k) == 8 && len(val) == 8 {
			seq[int(btoi(k))] = uint64(btoi(val))
		}
		return nil
	})
	for year, ns := range numbers {
		if uint64(len(ns)) != seq[year] {
			v.add("invoices: %d numbers issued in %d, but the year's counter is at %d", len(ns), year, seq[year])
		}
		for n := uint64(1); n <= seq[year]; n++ {
			if _, ok := ns[n]; !ok {
				v.add("invoices: number %d of %d is missing (a gap)", n, year)
			}
		}
	}
	for year, n := range seq {
		if numbers[year] == nil && n != 0 {
			v.add("invoices: the counter of %d is at %d, but no invoice of that year exists", year, n)
		}
	}
}

// parseInvoiceNumber reads the year and sequence number at the end of an
// invoice number (PREFIX-YYYY-NNNNNN; the prefix may have changed over
// the years).
func parseInvoiceNumber(num string) (year int, n uint64, ok bool) {
	i := strings.LastIndexByte(num, '-')
	if i < 0 {
		return 0, 0, false
	}
	j := strings.LastIndexByte(num[:i], '-')
	if j < 0 {
		return 0, 0, false
	}
	y, err1 := strconv.Atoi(num[j+1 : i])
	n, err2 := strconv.ParseUint(num[i+1:], 10, 64)
	return y, n, err1 == nil && err2 == nil
}

func checkDevices(tx *bbolt.Tx, v *violations) {
	bound := map[string]fablab.ID{}
	_ = tx.Bucket(bMachines).ForEach(func(k, raw []byte) error {
		var m fablab.Machine
		if err := getJSONBytes(raw, &m); err != nil {
			v.add("machine %s: unreadable: %v", btoi(k), err)
			return nil
		}
		if m.DeviceID == "" {
			return nil
		}
		if other, dup := bound[m.DeviceID]; dup {
			v.add("device %s: drives two machines, %s and %s", m.DeviceID, other, m.ID)
		}
		bound[m.DeviceID] = m.ID
		if got := tx.Bucket(bMachineDevice).Get([]byte(m.DeviceID)); got == nil || btoi(got) != m.ID {
			v.add("index machine_device: no entry for device %s of machine %s", m.DeviceID, m.ID)
		}
		return nil
	})
	_ = tx.Bucket(bMachineDevice).ForEach(func(k, val []byte) error {
		if bound[string(k)] != btoi(val) {
			v.add("index machine_device: device %s → machine %s, whose device is not it", k, btoi(val))
		}
		return nil
	})
}
