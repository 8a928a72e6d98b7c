package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// The ledger (schema 6). A charge is written once and never changed; a
// session is billed in the write transaction that writes its charge, marks
// the session (Session.ChargeID), takes it out of sessions_unbilled/,
// consumes the member's prepaid minutes and adds its usage record, so a
// session is charged exactly once whoever runs the billing and whenever the
// process dies.
//
//	charges/            id → JSON fablab.Charge
//	charges_at/         at | id → chargeSummary            (every charge, by the time of the use;
//	                    the figures the revenue report reads, drawn in reports.go)
//	charges_payer/      payer key | at | id → nil
//	charges_member/     member id | at | id → nil
//	charges_uninvoiced/ payer key | at | id → nil          (removed when an invoice takes the charge)
//	charges_session/    session id → charge id             (the session's own charge, not corrections)
//	charges_booking/    booking id → charge id             (a no-show fee)
//	sessions_unbilled/  session id → nil                   (ended sessions not billed yet)
//	usage/              start | session id → usageRecord   (one per billed session, for reports)
//
// A payer key is one byte (1 member, 2 organisation) and the id.

var (
	bCharges           = []byte("charges")
	bChargesAt         = []byte("charges_at")
	bChargesPayer      = []byte("charges_payer")
	bChargesMember     = []byte("charges_member")
	bChargesUninvoiced = []byte("charges_uninvoiced")
	bChargesSession    = []byte("charges_session")
	bChargesBooking    = []byte("charges_booking")
	bSessionsUnbilled  = []byte("sessions_unbilled")
	bUsage             = []byte("usage")
)

// ledgerBuckets are the buckets schema 6 adds.
var ledgerBuckets = [][]byte{bCharges, bChargesAt, bChargesPayer, bChargesMember, bChargesUninvoiced, bChargesSession, bChargesBooking, bSessionsUnbilled, bUsage}

// payerKey is a payer as a 9-byte key prefix.
func payerKey(p fablab.Payer) []byte {
	k := make([]byte, 9)
	if p.Kind == fablab.PayerIsOrganisation {
		k[0] = 2
	} else {
		k[0] = 1
	}
	binary.BigEndian.PutUint64(k[1:], uint64(p.ID))
	return k
}

// payerOfKey reads a payer key.
func payerOfKey(k []byte) fablab.Payer {
	p := fablab.Payer{Kind: fablab.PayerIsMember, ID: btoi(k[1:9])}
	if k[0] == 2 {
		p.Kind = fablab.PayerIsOrganisation
	}
	return p
}

// migrateLedger creates the ledger's buckets, puts every ended session that
// has no charge in sessions_unbilled/ and gives invoices payment terms of
// 30 days (schema 5 → 6).
func migrateLedger(tx *bbolt.Tx) error {
	for _, name := range append(ledgerBuckets, invoiceBuckets...) {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	unbilled := tx.Bucket(bSessionsUnbilled)
	err := tx.Bucket(bSessions).ForEach(func(k, v []byte) error {
		var sess fablab.Session
		if err := getJSONBytes(v, &sess); err != nil {
			return fmt.Errorf("session %d: %w", btoi(k), err)
		}
		if sess.Ended != nil && sess.ChargeID == 0 {
			return unbilled.Put(k, nil)
		}
		return nil
	})
	if err != nil {
		return err
	}
	st, err := loadSettings(tx)
	if err != nil {
		return err
	}
	if st.PaymentTermsDays == 0 {
		st.PaymentTermsDays = 30
	}
	return putJSON(tx.Bucket(bMeta), kSettings, st)
}

// usageRecord is a billed session as the reports read it: fixed-size
// big-endian fields, so that a report over a million sessions decodes no
// JSON. Layout (80 bytes, then the tariff group's bytes):
//
//	0  machine id      8  member id      16 organisation id (0: none)
//	24 payer key (9)   33 free reason (1: 0 billed, 1 staff, 2 short, 3 not billable, 4 prepaid, 5 no price)
//	34 unused (6)      40 started (Unix s) 48 ended (Unix s)
//	56 billable minutes 64 amount (cents, signed) 72 booking id (0: walk-in)
//	80 tariff group
type usageRecord struct {
	Machine, Member, Organisation fablab.ID
	Payer                         fablab.Payer
	Free                          string
	Started, Ended                time.Time
	Minutes                       int64
	AmountCents                   int64
	Booking                       fablab.ID
	Group                         string
}

var freeCodes = []string{"", fablab.FreeStaff, fablab.FreeShort, fablab.FreeNotBillable, fablab.FreePrepaid, fablab.FreeNoPrice}

func (u usageRecord) encode() []byte {
	b := make([]byte, 80+len(u.Group))
	binary.BigEndian.PutUint64(b[0:], uint64(u.Machine))
	binary.BigEndian.PutUint64(b[8:], uint64(u.Member))
	binary.BigEndian.PutUint64(b[16:], uint64(u.Organisation))
	copy(b[24:33], payerKey(u.Payer))
	for i, f := range freeCodes {
		if f == u.Free {
			b[33] = byte(i)
		}
	}
	binary.BigEndian.PutUint64(b[40:], uint64(u.Started.Unix()))
	binary.BigEndian.PutUint64(b[48:], uint64(u.Ended.Unix()))
	binary.BigEndian.PutUint64(b[56:], uint64(u.Minutes))
	binary.BigEndian.PutUint64(b[64:], uint64(u.AmountCents))
	binary.BigEndian.PutUint64(b[72:], uint64(u.Booking))
	copy(b[80:], u.Group)
	return b
}

func decodeUsage(b []byte) (usageRecord, error) {
	if len(b) < 80 {
		return usageRecord{}, fablab.Internal(nil, "usage record of %d bytes", len(b))
	}
	u := usageRecord{
		Machine:      btoi(b[0:]),
		Member:       btoi(b[8:]),
		Organisation: btoi(b[16:]),
		Payer:        payerOfKey(b[24:33]),
		Started:      time.Unix(int64(binary.BigEndian.Uint64(b[40:])), 0).UTC(),
		Ended:        time.Unix(int64(binary.BigEndian.Uint64(b[48:])), 0).UTC(),
		Minutes:      int64(binary.BigEndian.Uint64(b[56:])),
		AmountCents:  int64(binary.BigEndian.Uint64(b[64:])),
		Booking:      btoi(b[72:]),
		Group:        string(b[80:]),
	}
	if int(b[33]) < len(freeCodes) {
		u.Free = freeCodes[b[33]]
	}
	return u, nil
}

// putCharge writes a new charge and its indexes; it sets c.ID and
// c.CreatedAt.
func putCharge(tx *bbolt.Tx, c *fablab.Charge, now time.Time) error {
	b := tx.Bucket(bCharges)
	id, err := nextID(b)
	if err != nil {
		return err
	}
	c.ID, c.CreatedAt, c.At = id, now.UTC(), c.At.UTC()
	if err := putJSON(b, itob(id), *c); err != nil {
		return err
	}
	pk, at, ik := payerKey(c.Payer), tkey(c.At), itob(id)
	sum, err := summariseCharge(tx, *c)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bChargesAt).Put(cat(at, ik), sum.encode()); err != nil {
		return err
	}
	if err := tx.Bucket(bChargesPayer).Put(cat(pk, at, ik), nil); err != nil {
		return err
	}
	if err := tx.Bucket(bChargesMember).Put(cat(itob(c.MemberID), at, ik), nil); err != nil {
		return err
	}
	return tx.Bucket(bChargesUninvoiced).Put(cat(pk, at, ik), nil)
}

func getCharge(tx *bbolt.Tx, id fablab.ID) (fablab.Charge, error) {
	var c fablab.Charge
	err := getJSON(tx.Bucket(bCharges), itob(id), &c, fmt.Sprintf("charge %s", id))
	if fablab.ErrorCode(err) == fablab.ENOTFOUND {
		return c, fablab.Errorf(fablab.ENOTFOUND, "charge %s does not exist", id).Say("problem_charge_not_found", "ID", id.String())
	}
	return c, err
}

// billingContext reads what a charge for member on machine depends on.
func billingContext(tx *bbolt.Tx, st fablab.Settings, machine, member fablab.ID) (fablab.BillingContext, uint64, error) {
	return (*Store)(nil).billingContext(tx, st, machine, member)
}

// billingContext is the package function reading the machine and the
// member through the decode caches when s is not nil: a billing run reads
// the same few machines and members for a thousand sessions. What it
// returns is read only, but for the member's prepaid minutes (an int).
func (s *Store) billingContext(tx *bbolt.Tx, st fablab.Settings, machine, member fablab.ID) (fablab.BillingContext, uint64, error) {
	bc := fablab.BillingContext{Settings: st, FreeUnderMinutes: st.FreeUnderMinutes}
	var err error
	var r memberRecord
	if s != nil {
		if bc.Machine, err = s.readMachine(tx, machine); err != nil {
			return bc, 0, err
		}
		r, err = s.readMember(tx, member)
	} else {
		if bc.Machine, err = getMachine(tx, machine); err != nil {
			return bc, 0, err
		}
		r, err = getMember(tx, member)
	}
	if err != nil {
		return bc, 0, err
	}
	bc.Member = r.Member
	if r.OrganisationID != 0 {
		var o fablab.Organisation
		if err := getJSON(tx.Bucket(bOrganisations), itob(r.OrganisationID), &o, "organisation"); err == nil {
			bc.Organisation = &o
		} else if fablab.ErrorCode(err) != fablab.ENOTFOUND {
			return bc, 0, err
		}
	}
	return bc, r.SessionGen, nil
}

// billHook, when set (tests), runs between the writes of a billing
// transaction; an error it returns aborts the transaction there, as a
// process dying at that point would.
type billHook func(step string) error

// billSessionInTx bills one ended session unless it is billed already and
// reports whether it wrote a charge.
func (s *Store) billSessionInTx(tx *bbolt.Tx, st fablab.Settings, id fablab.ID, now time.Time) (bool, error) {
	step := func(name string) error {
		if s.billHook != nil {
			return s.billHook(name)
		}
		return nil
	}
	sess, err := getSession(tx, id)
	if fablab.ErrorCode(err) == fablab.ENOTFOUND {
		return false, tx.Bucket(bSessionsUnbilled).Delete(itob(id))
	}
	if err != nil {
		return false, err
	}
	if sess.Open() {
		return false, nil
	}
	if sess.ChargeID != 0 || tx.Bucket(bChargesSession).Get(itob(id)) != nil {
		return false, tx.Bucket(bSessionsUnbilled).Delete(itob(id))
	}
	bc, gen, err := s.billingContext(tx, st, sess.MachineID, sess.MemberID)
	if err != nil {
		return false, err
	}
	c, prepaid := fablab.SessionCharge(sess, bc, bc.Member.PrepaidMinutes)
	if err := putCharge(tx, &c, now); err != nil {
		return false, err
	}
	if err := step("charge"); err != nil {
		return false, err
	}
	if err := tx.Bucket(bChargesSession).Put(itob(id), itob(c.ID)); err != nil {
		return false, err
	}
	if err := step("charge_session"); err != nil {
		return false, err
	}
	sess.ChargeID = c.ID
	if err := putJSON(tx.Bucket(bSessions), itob(id), sess); err != nil {
		return false, err
	}
	if err := step("session"); err != nil {
		return false, err
	}
	if prepaid > 0 {
		bc.Member.PrepaidMinutes -= prepaid
		if err := putMember(tx, bc.Member, gen); err != nil {
			return false, err
		}
		if err := step("prepaid"); err != nil {
			return false, err
		}
	}
	u := usageRecord{
		Machine: sess.MachineID, Member: sess.MemberID, Payer: c.Payer, Free: c.Free,
		Started: sess.Started, Ended: *sess.Ended, Minutes: c.Minutes, AmountCents: c.AmountCents,
		Booking: sess.BookingID, Group: c.Group,
	}
	if bc.Organisation != nil {
		u.Organisation = bc.Organisation.ID
	}
	if err := tx.Bucket(bUsage).Put(cat(tkey(sess.Started), itob(id)), u.encode()); err != nil {
		return false, err
	}
	if err := step("usage"); err != nil {
		return false, err
	}
	return true, tx.Bucket(bSessionsUnbilled).Delete(itob(id))
}

// BillSessions bills up to limit ended sessions not billed yet, each in
// the write transaction that writes its charge (see the ledger above), and
// returns how many it charged and how many are left. Two runs at once,
// or a run after a crash, never charge a session twice.
func (s *Store) BillSessions(ctx context.Context, limit int) (billed, left int, err error) {
	var ids []fablab.ID
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		ids = ids[:0]
		c := tx.Bucket(bSessionsUnbilled).Cursor()
		for k, _ := c.First(); k != nil && len(ids) < limit; k, _ = c.Next() {
			ids = append(ids, btoi(k))
		}
		return nil
	})
	if err != nil || len(ids) == 0 {
		return 0, 0, err
	}
	now := s.now()
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		billed = 0
		st, err := loadSettings(tx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			done, err := s.billSessionInTx(tx, st, id, now)
			if err != nil {
				return fmt.Errorf("bill session %s: %w", id, err)
			}
			if done {
				billed++
			}
		}
		left = 0 // Stats lags behind a transaction's own writes: count
		c := tx.Bucket(bSessionsUnbilled).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			left++
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return billed, left, nil
}

// rebillInTx brings a billed session's charges in line with the session
// after its end changed (a device reporting, once back, that it ended
// earlier): a correction line for the difference, never an edit. The
// prepaid minutes the first charge took are given back before the rule
// runs again.
func rebillInTx(tx *bbolt.Tx, sess fablab.Session, now time.Time) error {
	if sess.ChargeID == 0 {
		return nil
	}
	st, err := loadSettings(tx)
	if err != nil {
		return err
	}
	// What the rule charged so far: the charge and the earlier rebills.
	// Staff corrections stand apart: a credit given stays given.
	var minutes, prepaid, amount int64
	first, err := getCharge(tx, sess.ChargeID)
	if err != nil {
		return err
	}
	for _, c := range chargesOfSession(tx, sess.MemberID, first, sess.Started) {
		if c.ID != first.ID && c.Note != rebillNote {
			continue
		}
		minutes, prepaid, amount = minutes+c.Minutes, prepaid+c.PrepaidMinutes, amount+c.AmountCents
	}
	bc, gen, err := billingContext(tx, st, sess.MachineID, sess.MemberID)
	if err != nil {
		return err
	}
	// The session is billed at the prices of when it was first billed.
	if first.Free != fablab.FreeNoPrice && first.UnitCents > 0 {
		bc.Machine.Prices = map[string]int64{first.Group: first.UnitCents}
	}
	want, usedPrepaid := fablab.SessionCharge(sess, bc, bc.Member.PrepaidMinutes+prepaid)
	if want.Minutes == minutes && usedPrepaid == prepaid && want.AmountCents == amount {
		return nil
	}
	corr := want
	corr.Kind, corr.Corrects = fablab.ChargeCorrection, first.ID
	corr.Minutes, corr.PrepaidMinutes, corr.AmountCents = want.Minutes-minutes, usedPrepaid-prepaid, want.AmountCents-amount
	corr.Note = rebillNote
	if err := putCharge(tx, &corr, now); err != nil {
		return err
	}
	if usedPrepaid != prepaid {
		bc.Member.PrepaidMinutes -= usedPrepaid - prepaid
		if err := putMember(tx, bc.Member, gen); err != nil {
			return err
		}
	}
	key := cat(tkey(sess.Started), itob(sess.ID))
	if raw := tx.Bucket(bUsage).Get(key); raw != nil {
		u, err := decodeUsage(raw)
		if err != nil {
			return err
		}
		u.Ended, u.Minutes, u.AmountCents, u.Free = *sess.Ended, want.Minutes, want.AmountCents, want.Free
		return tx.Bucket(bUsage).Put(key, u.encode())
	}
	return nil
}

// rebillNote marks the corrections the rule writes when a billed
// session's end changes (rebillInTx), apart from those staff write.
const rebillNote = "session end corrected"

// chargesOfSession returns a charge and its corrections, found among the
// member's charges from from on. A session's corrections are dated from its
// start: a rebill dates its correction at the session's new end, which may
// be days before the first charge (a device offline for days); staff date
// theirs when they make them.
func chargesOfSession(tx *bbolt.Tx, member fablab.ID, first fablab.Charge, from time.Time) []fablab.Charge {
	out := []fablab.Charge{first}
	prefix := itob(member)
	c := tx.Bucket(bChargesMember).Cursor()
	for k, _ := c.Seek(cat(prefix, tkey(from))); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ch, err := getCharge(tx, btoi(k[16:24]))
		if err == nil && ch.Kind == fablab.ChargeCorrection && ch.Corrects == first.ID {
			out = append(out, ch)
		}
	}
	return out
}

// chargeNoShowInTx charges a no-show booking's fee once.
func chargeNoShowInTx(tx *bbolt.Tx, st fablab.Settings, b fablab.Booking, now time.Time) error {
	if tx.Bucket(bChargesBooking).Get(itob(b.ID)) != nil {
		return nil
	}
	bc, _, err := billingContext(tx, st, b.MachineID, b.MemberID)
	if err != nil {
		return err
	}
	c, ok := fablab.NoShowCharge(b, bc)
	if !ok {
		return nil
	}
	if err := putCharge(tx, &c, now); err != nil {
		return err
	}
	return tx.Bucket(bChargesBooking).Put(itob(b.ID), itob(c.ID))
}

// AddCorrection appends a correction line to charge id: amount (cents,
// usually negative: a credit) with a note saying why, by staff member by.
// The charge's total with its corrections may not fall below zero.
// Errors: ENOTFOUND, EINVALID.
func (s *Store) AddCorrection(ctx context.Context, id fablab.ID, amount int64, note string, by fablab.ID) (fablab.Charge, error) {
	if amount == 0 {
		return fablab.Charge{}, fablab.Errorf(fablab.EINVALID, "amount_cents must not be 0: give the amount to credit (negative) or to add").On("amount_cents").
			Say("problem_correction_amount")
	}
	if len(note) == 0 || len(note) > 500 {
		return fablab.Charge{}, fablab.Errorf(fablab.EINVALID, "note must say why, in 1–500 characters").On("note").Say("problem_correction_note")
	}
	var out fablab.Charge
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		first, err := getCharge(tx, id)
		if err != nil {
			return err
		}
		if first.Kind == fablab.ChargeCorrection {
			return fablab.Errorf(fablab.EINVALID, "charge %s is itself a correction: correct charge %s instead", id, first.Corrects).On("charge_id").
				Say("problem_correction_of_correction", "ID", id.String(), "First", first.Corrects.String())
		}
		from := first.At
		if first.SessionID != 0 {
			sess, err := getSession(tx, first.SessionID)
			if err != nil {
				return err
			}
			from = sess.Started
		}
		var total int64
		for _, c := range chargesOfSession(tx, first.MemberID, first, from) {
			total += c.AmountCents
		}
		if total+amount < 0 {
			var st fablab.Settings
			if st, err = loadSettings(tx); err != nil {
				return err
			}
			return fablab.Errorf(fablab.EINVALID, "a credit of %s would take charge %s below zero: at most %s is left to credit", fablab.FormatDecimal(-amount), id, fablab.FormatDecimal(total)).On("amount_cents").
				Say("problem_correction_below_zero", "Amount", fablab.Money{Cents: -amount, Currency: st.Currency}, "ID", id.String(), "Left", fablab.Money{Cents: total, Currency: st.Currency})
		}
		c := fablab.Charge{
			Kind: fablab.ChargeCorrection, Corrects: id, Payer: first.Payer, MemberID: first.MemberID,
			MachineID: first.MachineID, SessionID: first.SessionID, BookingID: first.BookingID, Group: first.Group,
			AmountCents: amount, VATRateBP: first.VATRateBP, At: s.now(), Note: note,
		}
		if err := putCharge(tx, &c, s.now()); err != nil {
			return err
		}
		out = c
		return appendAudit(tx, []fablab.AuditEvent{{
			At: s.now(), Kind: fablab.AuditAPI, Action: "charge_corrected", ActorID: by, MemberID: first.MemberID,
			Detail: map[string]any{"charge_id": id.String(), "correction_id": c.ID.String(), "amount_cents": amount, "note": note},
		}})
	})
	return out, err
}

// Charge returns one charge. Errors: ENOTFOUND.
func (s *Store) Charge(ctx context.Context, id fablab.ID) (fablab.Charge, error) {
	var c fablab.Charge
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		c, err = getCharge(tx, id)
		return err
	})
	return c, err
}

// ChargeFilter selects charges whose use falls in [From, To): all of them,
// one member's, or one payer's.
type ChargeFilter struct {
	From, To time.Time
	MemberID fablab.ID
	Payer    *fablab.Payer
	// Uninvoiced keeps only charges no invoice has taken yet (with Payer).
	Uninvoiced bool
	Limit      int // 0: no limit
}

// Charges lists charges by the time of their use, read through an index.
func (s *Store) Charges(ctx context.Context, f ChargeFilter) ([]fablab.Charge, error) {
	var out []fablab.Charge
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		out = nil
		return forEachCharge(tx, f, func(c fablab.Charge) bool {
			out = append(out, c)
			return f.Limit == 0 || len(out) < f.Limit
		})
	})
	return out, err
}

// forEachCharge calls fn for each charge f selects, in time order, until
// fn returns false.
func forEachCharge(tx *bbolt.Tx, f ChargeFilter, fn func(fablab.Charge) bool) error {
	var index, prefix []byte
	switch {
	case f.Payer != nil && f.Uninvoiced:
		index, prefix = bChargesUninvoiced, payerKey(*f.Payer)
	case f.Payer != nil:
		index, prefix = bChargesPayer, payerKey(*f.Payer)
	case f.Uninvoiced:
		return fablab.Errorf(fablab.EINVALID, "uninvoiced charges are listed per payer")
	case f.MemberID != 0:
		index, prefix = bChargesMember, itob(f.MemberID)
	default:
		index = bChargesAt
	}
	from, to := cat(prefix, tkey(f.From)), cat(prefix, tkey(f.To))
	if f.To.IsZero() {
		to = cat(prefix, u64(^uint64(0)))
	}
	c := tx.Bucket(index).Cursor()
	for k, _ := c.Seek(from); k != nil && bytes.Compare(k, to) < 0; k, _ = c.Next() {
		ch, err := getCharge(tx, btoi(k[len(prefix)+8:]))
		if err != nil {
			return err
		}
		if f.MemberID != 0 && ch.MemberID != f.MemberID {
			continue
		}
		if !fn(ch) {
			return nil
		}
	}
	return nil
}

// UnbilledSessions counts the ended sessions not billed yet.
func (s *Store) UnbilledSessions(ctx context.Context) (int, error) {
	var n int
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		n = tx.Bucket(bSessionsUnbilled).Stats().KeyN
		return nil
	})
	return n, err
}
