package ical_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	goical "github.com/emersion/go-ical"

	"github.com/fabgate/fabgate/internal/ical"
)

// TestEncodeParsesBack writes a calendar with text that needs escaping and
// folding, and reads it back with an independent RFC 5545 parser.
func TestEncodeParsesBack(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	stamp := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)
	long := strings.Repeat("Découpeuse laser — réglages, puissance; vitesse\\ ", 6)
	events := []ical.Event{
		{UID: "booking-1@fabgate", Stamp: stamp, Start: time.Date(2026, 3, 29, 1, 30, 0, 0, paris), End: time.Date(2026, 3, 29, 3, 30, 0, 0, paris),
			Summary: "Laser, 2 h; atelier", Description: "ligne 1\nligne 2, avec virgule", Location: long, URL: "https://lab.example/machines/3", Status: ical.Confirmed},
		{UID: "booking-2@fabgate", Sequence: 2, Stamp: stamp, Start: time.Date(2026, 10, 25, 2, 30, 0, 0, paris), End: time.Date(2026, 10, 25, 4, 0, 0, 0, paris),
			Summary: "Imprimante 3D", Status: ical.Cancelled},
	}
	doc := ical.Encode(ical.Calendar{Name: "FabGate — mes réservations", TimeZone: "Europe/Paris", Method: ical.Publish, Events: events})

	for i, line := range bytes.Split(bytes.TrimSuffix(doc, []byte("\r\n")), []byte("\r\n")) {
		if len(line) > 75 {
			t.Errorf("line %d is %d octets, more than 75: %q", i+1, len(line), line)
		}
		if bytes.ContainsAny(line, "\r\n") {
			t.Errorf("line %d holds a bare CR or LF: %q", i+1, line)
		}
	}
	if !bytes.HasSuffix(doc, []byte("END:VCALENDAR\r\n")) {
		t.Fatalf("document does not end with END:VCALENDAR CRLF: %q", doc[len(doc)-20:])
	}

	cal, err := goical.NewDecoder(bytes.NewReader(doc)).Decode()
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, doc)
	}
	if got := cal.Props.Get(goical.PropMethod).Value; got != "PUBLISH" {
		t.Errorf("METHOD = %q", got)
	}
	if got, _ := cal.Props.Text("X-WR-CALNAME"); got != "FabGate — mes réservations" {
		t.Errorf("X-WR-CALNAME = %q", got)
	}
	got := cal.Events()
	if len(got) != len(events) {
		t.Fatalf("parsed %d events, wrote %d", len(got), len(events))
	}
	for i, want := range events {
		e := got[i]
		uid, _ := e.Props.Text(goical.PropUID)
		summary, _ := e.Props.Text(goical.PropSummary)
		desc, _ := e.Props.Text(goical.PropDescription)
		loc, _ := e.Props.Text(goical.PropLocation)
		start, err := e.DateTimeStart(time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		end, err := e.DateTimeEnd(time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		status := e.Props.Get(goical.PropStatus).Value
		if uid != want.UID || summary != want.Summary || desc != want.Description || loc != want.Location ||
			!start.Equal(want.Start) || !end.Equal(want.End) || status != string(want.Status) {
			t.Errorf("event %d read back as uid=%q summary=%q desc=%q loc=%q start=%v end=%v status=%q; wrote %+v",
				i, uid, summary, desc, loc, start, end, status, want)
		}
	}
	if seq := got[1].Props.Get(goical.PropSequence); seq == nil || seq.Value != "2" {
		t.Errorf("SEQUENCE of event 2 = %v, want 2", seq)
	}
}

// TestFoldKeepsUTF8 folds a line made only of two-byte characters: no line
// may end inside a character.
func TestFoldKeepsUTF8(t *testing.T) {
	doc := ical.Encode(ical.Calendar{Name: strings.Repeat("é", 200)})
	for _, line := range strings.Split(string(doc), "\r\n") {
		if !strings.HasPrefix(line, " ") && !strings.Contains(line, ":") && line != "" {
			t.Errorf("line neither a property nor a continuation: %q", line)
		}
		if !utf8Valid(line) {
			t.Errorf("fold split a character: %q", line)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
