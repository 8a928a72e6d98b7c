package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/booking"
	"github.com/fabgate/fabgate/internal/fablab"
)

// Reports: what the lab's machines were booked and used for, and what they
// earned. Both read index buckets only, in key order, in read transactions
// of at most reportChunk keys each, resuming after the last key read
// (DESIGN §8: no read transaction stays open long, whatever the size of the
// file): usage/ and bookings_machine/ for the usage report, charges_at/ for
// the revenue report. They aggregate in maps keyed by the grouping only, so
// memory grows with the number of machines, members or rows of the report,
// never with the number of sessions or charges.
//
// A report is therefore not one snapshot: a session billed or a charge
// written while a report runs may or may not be in it. Every figure is
// still computed from whole records, and the totals are the sums of the
// rows.
//
// charges_at/ values are charge summaries: fixed-size big-endian fields, so
// that the revenue report over a million charges decodes no JSON. Layout
// (56 bytes, then the tariff group's bytes):
//
//	0  payer key (9)   9 kind (1 session, 2 no_show, 3 correction)   10 unused (6)
//	16 machine id      24 member id   32 organisation id (0: none)
//	40 minutes (signed) 48 amount (cents excluding VAT, signed)   56 tariff group
//
// The organisation is the member's when the charge was written (the payer
// when an organisation pays); a correction keeps the one of the charge it
// corrects.

// reportChunk is how many index keys one read transaction of a report
// reads (a variable so that tests can make it small).
var reportChunk = 10_000

// MaxReportSpan is the longest range a report covers.
const MaxReportSpan = 5 * 366 * 24 * time.Hour

// usageLookback is how long before a report's range a session may have
// started and still be counted for its part inside the range. Sessions are
// keyed by their start; a session longer than this (none is: the longest
// booking lasts a week) is counted only in the ranges it starts within
// usageLookback of.
const usageLookback = maxBookingSpan

// The groupings of the usage report.
const (
	ByMachine      = "machine"
	ByGroup        = "group"
	ByMember       = "member"
	ByOrganisation = "organisation"
)

// UsageGroupings lists the groupings UsageReport accepts.
var UsageGroupings = []string{ByMachine, ByGroup, ByMember, ByOrganisation}

// checkReportRange validates a report's range. Errors: EINVALID.
func checkReportRange(from, to time.Time) error {
	if from.IsZero() {
		return fablab.Errorf(fablab.EINVALID, "from is required: the start of the report's range").On("from").Say("problem_report_from")
	}
	if to.IsZero() {
		return fablab.Errorf(fablab.EINVALID, "to is required: the end of the report's range (exclusive)").On("to").Say("problem_report_to")
	}
	if !to.After(from) {
		return fablab.Errorf(fablab.EINVALID, "to must be after from").On("to").Say("problem_range_order")
	}
	if to.Sub(from) > MaxReportSpan {
		return fablab.Errorf(fablab.EINVALID, "a report covers at most 5 years: move to closer to from").On("to").Say("problem_report_span")
	}
	return nil
}

// releaseAfter is how many keys a scan reads before, at its end, the
// store gives back what it read (see scanChunked).
var releaseAfter = 100_000

// scanChunked calls fn for each key of bucket in [from, to), in key order,
// in read transactions of at most reportChunk keys each: the next one
// seeks the first key not read yet. fn must not keep k, v or tx.
//
// A long scan (a year of a busy lab's sessions) reads hundreds of
// megabytes of the mapped file, which then count in the server's resident
// memory until the kernel reclaims them, and leaves the heap it grew for
// the garbage collector to return slowly. After more than releaseAfter
// keys the scan drops the file's pages from the mapping and returns freed
// heap to the system at once: a server's memory is what it uses, not the
// largest report anyone ran.
func (s *Store) scanChunked(ctx context.Context, bucket, from, to []byte, fn func(tx *bbolt.Tx, k, v []byte) error) error {
	seek, total := from, 0
	defer func() {
		if total > releaseAfter {
			_ = s.releaseMapped() // if it fails, the kernel reclaims the pages in its own time
			debug.FreeOSMemory()
		}
	}()
	for {
		var next []byte
		err := s.view(ctx, func(tx *bbolt.Tx) error {
			next = nil
			c := tx.Bucket(bucket).Cursor()
			n := 0
			for k, v := c.Seek(seek); k != nil && bytes.Compare(k, to) < 0; k, v = c.Next() {
				if n == reportChunk {
					next = append([]byte(nil), k...)
					return nil
				}
				if err := fn(tx, k, v); err != nil {
					return err
				}
				n++
				total++
			}
			return nil
		})
		if err != nil || next == nil {
			return err
		}
		seek = next
	}
}

// ---- usage ----

// UsageRow is the use of one machine, tariff group, member or organisation
// over a report's range. Minutes are rounded to the nearest minute from
// seconds.
type UsageRow struct {
	// Key is the machine's, member's or organisation's id in decimal ("0":
	// members of no organisation), or the tariff group's id.
	Key  string
	Name string
	// BookedMinutes: confirmed and completed bookings overlapping the
	// range, the part inside it.
	BookedMinutes int64
	// UsedMinutes: billed sessions overlapping the range, the part inside
	// it (open sessions and ended ones not billed yet are not counted).
	UsedMinutes int64
	// OpenMinutes: the lab's opening hours minus its closures within the
	// range, for each machine row; 0 in the other groupings (the report's
	// Total has the lab's).
	OpenMinutes int64
	// Bookings starting in the range that were not cancelled (confirmed,
	// completed and no-shows), and how many of them were no-shows.
	Bookings, NoShows int
	// Sessions: billed sessions starting in the range.
	Sessions int
	// BusiestHours is the used minutes by weekday (0 Sunday … 6 Saturday)
	// and hour of the lab's wall clock. Each cell is rounded on its own, so
	// the cells may not add up to UsedMinutes exactly.
	BusiestHours [7][24]int64
}

// NoShowRate is NoShows / Bookings (0 without bookings).
func (r UsageRow) NoShowRate() float64 {
	if r.Bookings == 0 {
		return 0
	}
	return float64(r.NoShows) / float64(r.Bookings)
}

// UsageReport is the usage of the lab over [From, To) grouped By machine,
// tariff group, member or organisation.
//
// Bookings and sessions are grouped differently by tariff group and
// organisation: a billed session by the group and organisation it was
// billed under, a booking by its member's current ones.
type UsageReport struct {
	From, To time.Time
	By       string
	TimeZone string
	Rows     []UsageRow
	// Total sums the rows, except OpenMinutes: the lab's open minutes in
	// the range.
	Total UsageRow
}

// usageAgg is a row being summed, in seconds.
type usageAgg struct {
	bookedSec, usedSec          int64
	bookings, noShows, sessions int
	cells                       [7 * 24]int64 // seconds
}

// usageAggs are the rows of a report being summed, by id or by group.
type usageAggs struct {
	ids    map[fablab.ID]*usageAgg
	groups map[string]*usageAgg
}

func (a *usageAggs) forID(id fablab.ID) *usageAgg {
	g := a.ids[id]
	if g == nil {
		g = &usageAgg{}
		a.ids[id] = g
	}
	return g
}

// forGroup finds the row of group g (the lookup itself allocates nothing).
func (a *usageAggs) forGroup(g []byte) *usageAgg {
	r := a.groups[string(g)]
	if r == nil {
		r = &usageAgg{}
		a.groups[string(g)] = r
	}
	return r
}

// UsageReport sums bookings, billed sessions and opening hours over [from,
// to) by machine, tariff group, member or organisation (see UsageReport
// and UsageRow for what each figure counts). Errors: EINVALID (field from,
// to or by).
func (s *Store) UsageReport(ctx context.Context, from, to time.Time, by string) (UsageReport, error) {
	if err := checkReportRange(from, to); err != nil {
		return UsageReport{}, err
	}
	if !slices.Contains(UsageGroupings, by) {
		return UsageReport{}, fablab.Errorf(fablab.EINVALID, "by must be one of %s", strings.Join(UsageGroupings, ", ")).On("by").
			Say("problem_report_by", "Got", fablab.Truncate(by, 40))
	}
	from, to = from.UTC(), to.UTC()
	st, err := s.Settings(ctx)
	if err != nil {
		return UsageReport{}, err
	}
	loc := st.Location()
	rep := UsageReport{From: from, To: to, By: by, TimeZone: st.TimeZone}
	aggs := usageAggs{ids: map[fablab.ID]*usageAgg{}, groups: map[string]*usageAgg{}}

	// Billed sessions, from usage/.
	zones := newZoneSpans(loc, from.Add(-usageLookback), to)
	fromU, toU := from.Unix(), to.Unix()
	err = s.scanChunked(ctx, bUsage, tkey(from.Add(-usageLookback)), tkey(to), func(_ *bbolt.Tx, k, v []byte) error {
		if len(v) < 80 {
			return fablab.Internal(nil, "usage record %x of %d bytes", k, len(v))
		}
		started, ended := int64(binary.BigEndian.Uint64(v[40:])), int64(binary.BigEndian.Uint64(v[48:]))
		a, b := max(started, fromU), min(ended, toU)
		startsIn := started >= fromU && started < toU
		if !startsIn && b <= a {
			return nil
		}
		var g *usageAgg
		switch by {
		case ByMachine:
			g = aggs.forID(btoi(v[0:8]))
		case ByMember:
			g = aggs.forID(btoi(v[8:16]))
		case ByOrganisation:
			g = aggs.forID(btoi(v[16:24]))
		default:
			g = aggs.forGroup(v[80:])
		}
		if startsIn {
			g.sessions++
		}
		if b > a {
			g.usedSec += b - a
			zones.spread(&g.cells, a, b)
		}
		return nil
	})
	if err != nil {
		return UsageReport{}, err
	}

	// Bookings, machine by machine, from bookings_machine/ (every state).
	var machines []fablab.ID
	if err := s.view(ctx, func(tx *bbolt.Tx) error {
		machines = machines[:0]
		c := tx.Bucket(bMachines).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			machines = append(machines, btoi(k))
		}
		return nil
	}); err != nil {
		return UsageReport{}, err
	}
	members := map[fablab.ID]memberGrouping{}
	for _, m := range machines {
		if by == ByMachine {
			aggs.forID(m) // every machine has its row, used or not
		}
		lo, hi := cat(itob(m), tkey(from.Add(-maxBookingSpan))), cat(itob(m), tkey(to))
		err := s.scanChunked(ctx, bBookingsMach, lo, hi, func(tx *bbolt.Tx, k, _ []byte) error {
			raw := tx.Bucket(bBookings).Get(k[16:24])
			if raw == nil {
				return fablab.Internal(nil, "booking index names missing booking %s", btoi(k[16:24]))
			}
			var b bookingFigures
			if err := json.Unmarshal(raw, &b); err != nil {
				return fablab.Internal(err, "decode stored booking %s", btoi(k[16:24]))
			}
			var booked int64
			if b.State == fablab.BookingConfirmed || b.State == fablab.BookingCompleted {
				booked = max(0, min(b.End.Unix(), toU)-max(b.Start.Unix(), fromU))
			}
			startsIn := !b.Start.Before(from) && b.Start.Before(to) && b.State != fablab.BookingCancelled
			if booked == 0 && !startsIn {
				return nil
			}
			var g *usageAgg
			switch by {
			case ByMachine:
				g = aggs.forID(m)
			case ByMember:
				g = aggs.forID(b.MemberID)
			default:
				mg, ok := members[b.MemberID]
				if !ok {
					var err error
					if mg, err = s.memberGroupingOf(tx, b.MemberID); err != nil {
						return err
					}
					members[b.MemberID] = mg
				}
				if by == ByOrganisation {
					g = aggs.forID(mg.organisation)
				} else {
					g = aggs.forGroup([]byte(mg.group))
				}
			}
			g.bookedSec += booked
			if startsIn {
				g.bookings++
				if b.State == fablab.BookingNoShow {
					g.noShows++
				}
			}
			return nil
		})
		if err != nil {
			return UsageReport{}, err
		}
	}

	var open time.Duration
	for _, iv := range booking.OpenIntervals(&st, from, to) {
		open += iv.Duration()
	}
	openMin := int64(math.Round(open.Minutes()))

	// The rows, named.
	rows := make([]UsageRow, 0, len(aggs.ids)+len(aggs.groups))
	for id, g := range aggs.ids {
		r := g.row(id.String())
		if by == ByMachine {
			r.OpenMinutes = openMin
		}
		rows = append(rows, r)
	}
	for key, g := range aggs.groups {
		rows = append(rows, g.row(key))
	}
	if err := s.nameUsageRows(ctx, by, rows); err != nil {
		return UsageReport{}, err
	}
	if by == ByGroup {
		slices.SortFunc(rows, func(a, b UsageRow) int { return strings.Compare(a.Key, b.Key) })
	} else {
		slices.SortFunc(rows, func(a, b UsageRow) int { return cmpDecimal(a.Key, b.Key) })
	}
	// The total adds up the rows as they are rounded, so that a Total line
	// is the sum of the lines above it (summing the seconds first and
	// rounding once may give a minute more or less).
	rep.Rows, rep.Total = rows, UsageRow{Key: "total", Name: "Total", OpenMinutes: openMin}
	for _, r := range rows {
		rep.Total.add(r)
	}
	return rep, nil
}

// bookingFigures are the fields of a stored booking the usage report reads.
type bookingFigures struct {
	MemberID fablab.ID `json:"member_id"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	State    string    `json:"state"`
}

// memberGrouping is a member's current tariff group and organisation.
type memberGrouping struct {
	group        string
	organisation fablab.ID
}

// memberGroupingOf reads a member's tariff group (their own, else their
// organisation's) and organisation; a member no longer stored has neither.
func (s *Store) memberGroupingOf(tx *bbolt.Tx, id fablab.ID) (memberGrouping, error) {
	r, err := s.readMember(tx, id)
	if fablab.ErrorCode(err) == fablab.ENOTFOUND {
		return memberGrouping{}, nil
	}
	if err != nil {
		return memberGrouping{}, err
	}
	mg := memberGrouping{group: r.Group}
	if r.OrganisationID == 0 {
		return mg, nil
	}
	var o fablab.Organisation
	err = getJSON(tx.Bucket(bOrganisations), itob(r.OrganisationID), &o, "organisation")
	switch {
	case fablab.ErrorCode(err) == fablab.ENOTFOUND:
		return mg, nil
	case err != nil:
		return mg, err
	}
	mg.organisation = o.ID
	if mg.group == "" {
		mg.group = o.Group
	}
	return mg, nil
}

// add adds the figures of row o to r, but for OpenMinutes.
func (r *UsageRow) add(o UsageRow) {
	r.BookedMinutes += o.BookedMinutes
	r.UsedMinutes += o.UsedMinutes
	r.Bookings += o.Bookings
	r.NoShows += o.NoShows
	r.Sessions += o.Sessions
	for d := range r.BusiestHours {
		for h := range r.BusiestHours[d] {
			r.BusiestHours[d][h] += o.BusiestHours[d][h]
		}
	}
}

// minutesOf rounds seconds to the nearest minute.
func minutesOf(sec int64) int64 { return (sec + 30) / 60 }

func (g *usageAgg) row(key string) UsageRow {
	r := UsageRow{
		Key: key, BookedMinutes: minutesOf(g.bookedSec), UsedMinutes: minutesOf(g.usedSec),
		Bookings: g.bookings, NoShows: g.noShows, Sessions: g.sessions,
	}
	for i, sec := range g.cells {
		r.BusiestHours[i/24][i%24] = minutesOf(sec)
	}
	return r
}

// cmpDecimal orders decimal ids numerically.
func cmpDecimal(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// nameUsageRows sets the rows' names, in one read transaction (as many
// reads as rows).
func (s *Store) nameUsageRows(ctx context.Context, by string, rows []UsageRow) error {
	return s.view(ctx, func(tx *bbolt.Tx) error {
		groups := map[string]string{}
		if by == ByGroup {
			gs, err := loadTariffs(tx)
			if err != nil {
				return err
			}
			for _, g := range gs {
				groups[g.ID] = g.Name
			}
		}
		for i := range rows {
			r := &rows[i]
			if by == ByGroup {
				r.Name = groups[r.Key]
				continue
			}
			id, err := fablab.ParseID(r.Key)
			if err != nil || id == 0 {
				continue // members of no organisation
			}
			if r.Name, err = s.nameOf(tx, by, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// nameOf is the name of a machine, member or organisation ("" when it is
// no longer stored).
func (s *Store) nameOf(tx *bbolt.Tx, kind string, id fablab.ID) (string, error) {
	var name string
	var err error
	switch kind {
	case ByMachine:
		var m fablab.Machine
		m, err = s.readMachine(tx, id)
		name = m.Name
	case ByMember:
		var r memberRecord
		r, err = s.readMember(tx, id)
		name = r.Name
	case ByOrganisation:
		var o fablab.Organisation
		err = getJSON(tx.Bucket(bOrganisations), itob(id), &o, "organisation")
		name = o.Name
	}
	if fablab.ErrorCode(err) == fablab.ENOTFOUND {
		return "", nil
	}
	return name, err
}

// zoneSpans are the spans of constant UTC offset of a time zone over a
// range: the hour cells of the busiest-hours matrix are found with integer
// arithmetic, a DST change splitting a session where it falls.
type zoneSpans struct {
	ends []int64 // Unix seconds at which each span ends (the last: never)
	offs []int64 // its offset east of UTC, in seconds
	hint int
}

func newZoneSpans(loc *time.Location, from, to time.Time) *zoneSpans {
	z := &zoneSpans{}
	t := from.In(loc)
	for {
		_, off := t.Zone()
		_, end := t.ZoneBounds()
		if end.IsZero() || !end.Before(to) {
			z.ends, z.offs = append(z.ends, math.MaxInt64), append(z.offs, int64(off))
			return z
		}
		z.ends, z.offs = append(z.ends, end.Unix()), append(z.offs, int64(off))
		t = end.In(loc)
	}
}

// span returns the index of the span holding instant a.
func (z *zoneSpans) span(a int64) int {
	i := z.hint
	if i > 0 && a < z.ends[i-1] {
		i = 0
	}
	for a >= z.ends[i] && i < len(z.ends)-1 {
		i++
	}
	z.hint = i
	return i
}

// spread adds the seconds of [a, b) to the weekday × hour cells of the
// lab's wall clock. The divisions are made once per span of constant
// offset; from there the cells follow hour by hour (a report spreads a
// million sessions).
func (z *zoneSpans) spread(cells *[7 * 24]int64, a, b int64) {
	i := z.span(a)
	for a < b {
		for a >= z.ends[i] && i < len(z.ends)-1 {
			i++
		}
		local := a + z.offs[i]
		day := floorDiv(local, 86400)
		sec := local - day*86400
		cell := floorMod(day+4, 7)*24 + sec/3600 // 1970-01-01 was a Thursday; cell 0 is Sunday 00:00
		next := a + 3600 - sec%3600              // the next hour on the wall clock
		end := min(b, z.ends[i])
		for a < end {
			e := min(end, next)
			cells[cell] += e - a
			a, next = e, next+3600
			if cell++; cell == 7*24 {
				cell = 0
			}
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// ---- revenue ----

// RevenueRow is what the charges of one month (in the lab's zone), machine,
// tariff group and organisation add up to. Amounts are excluding VAT.
type RevenueRow struct {
	Month            string // YYYY-MM
	MachineID        fablab.ID
	MachineName      string
	Group            string
	GroupName        string
	OrganisationID   fablab.ID // 0: members of no organisation
	OrganisationName string
	Charges          int   // lines: session charges, no-show fees and corrections
	Minutes          int64 // billable minutes (corrections count their difference)
	AmountCents      int64
}

// RevenueReport is the ledger over [From, To) by month, machine, tariff
// group and organisation: every charge whose use (Charge.At) falls in the
// range, corrections included as the lines they are.
type RevenueReport struct {
	From, To    time.Time
	TimeZone    string
	Rows        []RevenueRow
	Charges     int
	Minutes     int64
	AmountCents int64
}

// revenueKey is a row of the revenue report being summed.
type revenueKey struct {
	machine, org fablab.ID
	month        int32 // index in the report's months
	group        int32 // index in the groups met
}

type revenueAgg struct {
	charges         int
	minutes, amount int64
}

// RevenueReport sums the charges of [from, to) by month (lab zone),
// machine, tariff group and organisation, reading charges_at/ alone.
// Errors: EINVALID (field from or to).
func (s *Store) RevenueReport(ctx context.Context, from, to time.Time) (RevenueReport, error) {
	if err := checkReportRange(from, to); err != nil {
		return RevenueReport{}, err
	}
	from, to = from.UTC(), to.UTC()
	st, err := s.Settings(ctx)
	if err != nil {
		return RevenueReport{}, err
	}
	loc := st.Location()
	rep := RevenueReport{From: from, To: to, TimeZone: st.TimeZone}
	// The months the range touches: starts[i] is where month i begins.
	var labels []string
	var starts []int64
	for p := fablab.PeriodOf(from, loc); p.Start(loc).Before(to); p = p.Next() {
		labels, starts = append(labels, p.String()), append(starts, p.Start(loc).Unix())
	}
	rows := map[revenueKey]*revenueAgg{}
	// A lab has a handful of tariff groups: found by a look along the
	// list, cheaper than hashing the name of each of a million charges.
	var groups []string
	groupOf := func(g []byte) int32 {
		for i, x := range groups {
			if x == string(g) {
				return int32(i)
			}
		}
		groups = append(groups, string(g))
		return int32(len(groups) - 1)
	}
	month := 0
	err = s.scanChunked(ctx, bChargesAt, tkey(from), tkey(to), func(tx *bbolt.Tx, k, v []byte) error {
		cs, err := readChargeSummary(tx, k, v)
		if err != nil {
			return err
		}
		at := int64(binary.BigEndian.Uint64(k[:8]) ^ (1 << 63))
		for month+1 < len(starts) && at >= starts[month+1] {
			month++
		}
		key := revenueKey{month: int32(month), machine: cs.Machine, org: cs.Organisation, group: groupOf(cs.group)}
		r := rows[key]
		if r == nil {
			r = &revenueAgg{}
			rows[key] = r
		}
		r.charges++
		r.minutes += cs.Minutes
		r.amount += cs.AmountCents
		return nil
	})
	if err != nil {
		return RevenueReport{}, err
	}
	rep.Rows = make([]RevenueRow, 0, len(rows))
	for k, r := range rows {
		rep.Rows = append(rep.Rows, RevenueRow{
			Month: labels[k.month], MachineID: k.machine, Group: groups[k.group], OrganisationID: k.org,
			Charges: r.charges, Minutes: r.minutes, AmountCents: r.amount,
		})
		rep.Charges += r.charges
		rep.Minutes += r.minutes
		rep.AmountCents += r.amount
	}
	slices.SortFunc(rep.Rows, func(a, b RevenueRow) int {
		switch {
		case a.Month != b.Month:
			return strings.Compare(a.Month, b.Month)
		case a.MachineID != b.MachineID:
			return cmpID(a.MachineID, b.MachineID)
		case a.Group != b.Group:
			return strings.Compare(a.Group, b.Group)
		}
		return cmpID(a.OrganisationID, b.OrganisationID)
	})
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		gs, err := loadTariffs(tx)
		if err != nil {
			return err
		}
		names := map[string]map[fablab.ID]string{ByMachine: {}, ByOrganisation: {}}
		name := func(kind string, id fablab.ID) (string, error) {
			if id == 0 {
				return "", nil
			}
			if n, ok := names[kind][id]; ok {
				return n, nil
			}
			n, err := s.nameOf(tx, kind, id)
			names[kind][id] = n
			return n, err
		}
		for i := range rep.Rows {
			r := &rep.Rows[i]
			if r.MachineName, err = name(ByMachine, r.MachineID); err != nil {
				return err
			}
			if r.OrganisationName, err = name(ByOrganisation, r.OrganisationID); err != nil {
				return err
			}
			for _, g := range gs {
				if g.ID == r.Group {
					r.GroupName = g.Name
				}
			}
		}
		return nil
	})
	return rep, err
}

func cmpID(a, b fablab.ID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// chargeSummary is a charge as charges_at/ holds it (layout above).
type chargeSummary struct {
	Payer        fablab.Payer
	Kind         string
	Machine      fablab.ID
	Member       fablab.ID
	Organisation fablab.ID
	Minutes      int64
	AmountCents  int64
	Group        string
	group        []byte // Group as read, before it is copied
}

var chargeKinds = []string{"", fablab.ChargeSession, fablab.ChargeNoShow, fablab.ChargeCorrection}

func (cs chargeSummary) encode() []byte {
	b := make([]byte, 56+len(cs.Group))
	copy(b[0:9], payerKey(cs.Payer))
	if i := slices.Index(chargeKinds, cs.Kind); i > 0 {
		b[9] = byte(i)
	}
	binary.BigEndian.PutUint64(b[16:], uint64(cs.Machine))
	binary.BigEndian.PutUint64(b[24:], uint64(cs.Member))
	binary.BigEndian.PutUint64(b[32:], uint64(cs.Organisation))
	binary.BigEndian.PutUint64(b[40:], uint64(cs.Minutes))
	binary.BigEndian.PutUint64(b[48:], uint64(cs.AmountCents))
	copy(b[56:], cs.Group)
	return b
}

// decodeChargeSummary reads a summary; its group is left in the group
// field, sharing b (Group is empty).
func decodeChargeSummary(b []byte) (chargeSummary, error) {
	if len(b) < 56 {
		return chargeSummary{}, fablab.Internal(nil, "charge summary of %d bytes", len(b))
	}
	cs := chargeSummary{
		Payer:        payerOfKey(b[0:9]),
		Machine:      btoi(b[16:]),
		Member:       btoi(b[24:]),
		Organisation: btoi(b[32:]),
		Minutes:      int64(binary.BigEndian.Uint64(b[40:])),
		AmountCents:  int64(binary.BigEndian.Uint64(b[48:])),
		group:        b[56:],
	}
	if int(b[9]) < len(chargeKinds) {
		cs.Kind = chargeKinds[b[9]]
	}
	return cs, nil
}

// readChargeSummary reads the charges_at/ entry k → v. A file written
// before the summaries (a 9-byte payer key: development builds of schema
// 6) has its charge read instead.
func readChargeSummary(tx *bbolt.Tx, k, v []byte) (chargeSummary, error) {
	if len(v) != 9 {
		return decodeChargeSummary(v)
	}
	c, err := getCharge(tx, btoi(k[8:16]))
	if err != nil {
		return chargeSummary{}, fmt.Errorf("charge of index key %x: %w", k, err)
	}
	cs := chargeSummaryOf(c)
	if c.Payer.Kind == fablab.PayerIsOrganisation {
		cs.Organisation = c.Payer.ID
	}
	cs.group = []byte(cs.Group)
	return cs, nil
}

func chargeSummaryOf(c fablab.Charge) chargeSummary {
	return chargeSummary{
		Payer: c.Payer, Kind: c.Kind, Machine: c.MachineID, Member: c.MemberID,
		Minutes: c.Minutes, AmountCents: c.AmountCents, Group: c.Group,
	}
}

// summariseCharge is the summary of a new charge, with its organisation:
// a correction's is the corrected charge's; else the paying organisation,
// else the member's.
func summariseCharge(tx *bbolt.Tx, c fablab.Charge) (chargeSummary, error) {
	cs := chargeSummaryOf(c)
	if c.Kind == fablab.ChargeCorrection && c.Corrects != 0 {
		first, err := getCharge(tx, c.Corrects)
		if err != nil {
			return cs, err
		}
		if v := tx.Bucket(bChargesAt).Get(cat(tkey(first.At), itob(first.ID))); len(v) >= 56 {
			cs.Organisation = btoi(v[32:40])
			return cs, nil
		}
	}
	if c.Payer.Kind == fablab.PayerIsOrganisation {
		cs.Organisation = c.Payer.ID
		return cs, nil
	}
	r, err := getMember(tx, c.MemberID)
	if fablab.ErrorCode(err) == fablab.ENOTFOUND {
		return cs, nil
	}
	if err != nil {
		return cs, err
	}
	if r.OrganisationID != 0 && tx.Bucket(bOrganisations).Get(itob(r.OrganisationID)) != nil {
		cs.Organisation = r.OrganisationID
	}
	return cs, nil
}
