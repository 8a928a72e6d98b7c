package httpapi

import (
	"bytes"
	"encoding/csv"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// The CSV files for the accountant carry text that people wrote: member,
// machine and organisation names, tariff groups, correction notes. Whatever
// that text holds, the file must read back with encoding/csv as the rows
// written, every row as wide as the header, and no text cell may start the
// way a spreadsheet formula does (OWASP "CSV injection") unless it is
// quoted as text with a leading apostrophe.

// csvReadBack parses doc: a header equal to header and n rows, each as
// wide as the header.
func csvReadBack(t *testing.T, doc []byte, header []string, n int) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(doc))
	r.FieldsPerRecord = len(header)
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("the CSV does not read back: %v\n%q", err, doc)
	}
	if len(recs) != n+1 {
		t.Fatalf("%d records, want a header and %d rows:\n%q", len(recs), n, doc)
	}
	if strings.Join(recs[0], ",") != strings.Join(header, ",") {
		t.Fatalf("header %q, want %q", recs[0], header)
	}
	return recs[1:]
}

// csvWantText is what a text cell written from v reads back as: with an
// apostrophe before a first character a spreadsheet would start a formula
// with, and CR LF as LF (encoding/csv's reader folds the line ends of a
// quoted cell).
func csvWantText(v string) string {
	if v != "" && strings.IndexByte("=+-@\t\r", v[0]) >= 0 {
		v = "'" + v
	}
	return strings.ReplaceAll(v, "\r\n", "\n")
}

// csvCheckText checks a text cell: it reads back as csvWantText(v) and
// does not start a formula.
func csvCheckText(t *testing.T, col, cell, v string) {
	t.Helper()
	if cell != csvWantText(v) {
		t.Errorf("%s: cell %q, want %q (written from %q)", col, cell, csvWantText(v), v)
	}
	if cell != "" && strings.IndexByte("=+-@\t\r", cell[0]) >= 0 {
		t.Errorf("%s: cell %q starts like a formula", col, cell)
	}
}

var csvDecimal = regexp.MustCompile(`^-?[0-9]+\.[0-9]{2}$`)

// csvCents reads a decimal amount cell back as cents.
func csvCents(t *testing.T, col, cell string) int64 {
	t.Helper()
	if !csvDecimal.MatchString(cell) {
		t.Errorf("%s: %q is not a decimal amount", col, cell)
		return 0
	}
	neg := strings.HasPrefix(cell, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(cell, "-"), ".")
	u, err := strconv.ParseUint(whole+frac, 10, 64)
	if err != nil {
		t.Errorf("%s: %q: %v", col, cell, err)
	}
	if neg {
		return int64(-u)
	}
	return int64(u)
}

// csvInt reads an integer cell back.
func csvInt(t *testing.T, col, cell string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(cell, 10, 64)
	if err != nil {
		t.Errorf("%s: %q is not an integer", col, cell)
	}
	return n
}

// FuzzChargesCSV writes a use and its correction with fuzzed names, group
// and note, and reads GET /charges?format=csv's file back.
func FuzzChargesCSV(f *testing.F) {
	f.Add("Alice Maker", "Laser", "student", "Refund: the laser stopped", int64(1200), int64(-300), int64(60), int64(15), uint16(2000))
	f.Add("=HYPERLINK(\"http://evil\",\"x\")", "+cmd|' /C calc'!A0", "-2", "@SUM(A1:A9)", int64(0), int64(-1), int64(0), int64(0), uint16(0))
	f.Add("\tTab", "\rReturn", "", "line 1\r\nline 2\nline 3\r", int64(-9223372036854775808), int64(9223372036854775807), int64(-1), int64(-1), uint16(65535))
	f.Add("", "", "", "", int64(5), int64(-5), int64(1), int64(1), uint16(550))
	f.Add("'=already quoted", "\"quoted\", with commas", " =lead space", "\xff\xfe not UTF-8", int64(99), int64(-99), int64(3), int64(2), uint16(1))
	paris := apiParis
	f.Fuzz(func(t *testing.T, memberName, machineName, group, note string, amount, correction, minutes, prepaid int64, vat uint16) {
		at := time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)
		charges := []fablab.Charge{
			{ID: 7, Kind: fablab.ChargeSession, Payer: fablab.Payer{Kind: fablab.PayerIsMember, ID: 3}, MemberID: 3, MachineID: 4, SessionID: 9,
				Group: group, Minutes: minutes, PrepaidMinutes: prepaid, UnitCents: amount, AmountCents: amount, VATRateBP: int(vat), At: at},
			{ID: 8, Kind: fablab.ChargeCorrection, Payer: fablab.Payer{Kind: fablab.PayerIsOrganisation, ID: 5}, MemberID: 6, Corrects: 7,
				Group: group, AmountCents: correction, At: at, Note: note},
		}
		members := map[fablab.ID]string{3: memberName}
		machines := map[fablab.ID]string{4: machineName}
		var buf bytes.Buffer
		if err := writeChargesCSV(&buf, charges, members, machines, paris); err != nil {
			t.Fatal(err)
		}
		rows := csvReadBack(t, buf.Bytes(), chargesHeader, len(charges))
		for i, ch := range charges {
			row := map[string]string{}
			for j, col := range chargesHeader {
				row[col] = rows[i][j]
			}
			csvCheckText(t, "member", row["member"], members[ch.MemberID])
			csvCheckText(t, "machine", row["machine"], machines[ch.MachineID])
			csvCheckText(t, "tariff_group", row["tariff_group"], ch.Group)
			csvCheckText(t, "note", row["note"], ch.Note)
			if row["charge_id"] != ch.ID.String() || row["kind"] != ch.Kind || row["payer"] != ch.Payer.String() || row["member_id"] != ch.MemberID.String() {
				t.Errorf("row %d: %q, want charge %+v", i, rows[i], ch)
			}
			if got, err := time.Parse(time.RFC3339, row["at"]); err != nil || !got.Equal(ch.At) {
				t.Errorf("at %q (%v), want %v", row["at"], err, ch.At)
			}
			if csvCents(t, "amount_excl_vat", row["amount_excl_vat"]) != ch.AmountCents ||
				csvCents(t, "unit_per_hour", row["unit_per_hour"]) != ch.UnitCents ||
				csvCents(t, "vat_rate_percent", row["vat_rate_percent"]) != int64(ch.VATRateBP) ||
				csvInt(t, "minutes", row["minutes"]) != ch.Minutes || csvInt(t, "prepaid_minutes", row["prepaid_minutes"]) != ch.PrepaidMinutes {
				t.Errorf("row %d: the numbers of %q differ from %+v", i, rows[i], ch)
			}
		}
	})
}

// FuzzReportsCSV writes a usage report's and a revenue report's rows with
// fuzzed names and group, as GET /reports/usage and /reports/revenue do
// with format=csv, and reads the files back.
func FuzzReportsCSV(f *testing.F) {
	f.Add(uint8(0), "Laser", "student", "Étudiant", "Acme", int64(90), int64(1200), 3, 1)
	f.Add(uint8(1), "=1+1", "-x", "@x", "+x", int64(-1), int64(-9223372036854775808), -1, 7)
	f.Add(uint8(2), "a,b\r\n\"c\"", "\t", "\r", "\n=1", int64(0), int64(9223372036854775807), 0, 0)
	f.Add(uint8(3), "", "", "", "", int64(1), int64(1), 1, 0)
	f.Fuzz(func(t *testing.T, by uint8, name, group, groupName, org string, minutes, cents int64, n, noShows int) {
		grouping := bolt.UsageGroupings[int(by)%len(bolt.UsageGroupings)]
		key := "12"
		if grouping == bolt.ByGroup {
			key = group
		}
		row := usageRow{Key: key, Name: name, BookedMinutes: minutes, UsedMinutes: minutes / 2, OpenMinutes: -minutes, Bookings: n, NoShows: noShows, Sessions: n}
		if n > 0 {
			row.NoShowRate = float64(noShows) / float64(n)
		}
		usage := []usageRow{row, {Key: "0", Name: ""}}
		var buf bytes.Buffer
		if err := writeUsageCSV(&buf, grouping, usage); err != nil {
			t.Fatal(err)
		}
		header := []string{grouping, "name", "booked_minutes", "used_minutes", "open_minutes", "bookings", "no_shows", "no_show_rate", "sessions"}
		for i, rec := range csvReadBack(t, buf.Bytes(), header, len(usage)) {
			want := usage[i]
			csvCheckText(t, grouping, rec[0], want.Key)
			csvCheckText(t, "name", rec[1], want.Name)
			if csvInt(t, "booked_minutes", rec[2]) != want.BookedMinutes || csvInt(t, "used_minutes", rec[3]) != want.UsedMinutes ||
				csvInt(t, "open_minutes", rec[4]) != want.OpenMinutes || csvInt(t, "bookings", rec[5]) != int64(want.Bookings) ||
				csvInt(t, "no_shows", rec[6]) != int64(want.NoShows) || csvInt(t, "sessions", rec[8]) != int64(want.Sessions) {
				t.Errorf("usage row %q, want %+v", rec, want)
			}
			if _, err := strconv.ParseFloat(rec[7], 64); err != nil {
				t.Errorf("no_show_rate %q is not a number", rec[7])
			}
		}

		revenue := []revenueRow{
			{Month: "2026-03", MachineID: "4", Machine: name, Group: group, GroupName: groupName, OrganisationID: "5", Organisation: org, Charges: n, Minutes: minutes, AmountExclCents: cents},
			{Month: "2026-03", MachineID: "0", Group: group, GroupName: groupName, OrganisationID: "0", AmountExclCents: -cents},
		}
		buf.Reset()
		if err := writeRevenueCSV(&buf, revenue); err != nil {
			t.Fatal(err)
		}
		for i, rec := range csvReadBack(t, buf.Bytes(), revenueHeader, len(revenue)) {
			want := revenue[i]
			csvCheckText(t, "machine", rec[2], want.Machine)
			csvCheckText(t, "group", rec[3], want.Group)
			csvCheckText(t, "group_name", rec[4], want.GroupName)
			csvCheckText(t, "organisation", rec[6], want.Organisation)
			if rec[0] != want.Month || rec[1] != want.MachineID || rec[5] != want.OrganisationID ||
				csvInt(t, "charges", rec[7]) != int64(want.Charges) || csvInt(t, "minutes", rec[8]) != want.Minutes ||
				csvCents(t, "amount_excl_vat", rec[9]) != want.AmountExclCents {
				t.Errorf("revenue row %q, want %+v", rec, want)
			}
		}
	})
}
