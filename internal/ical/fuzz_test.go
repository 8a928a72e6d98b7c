package ical_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	goical "github.com/emersion/go-ical"

	"github.com/fabgate/fabgate/internal/ical"
)

// FuzzEncode writes a calendar whose text comes from outside (the lab's,
// machine's and member's names, notes, the lab's address) and reads it
// back with a strict RFC 5545 reader written here and with go-ical: every
// line is at most 75 octets, no text adds or breaks a property, and each
// value reads back as written, up to what TEXT cannot hold (see wantText).
func FuzzEncode(f *testing.F) {
	f.Add("FabLab Parc Tech — Alice", "Europe/Paris", "booking-1@lab.example", "Laser", "Completed.", "FabLab Parc Tech",
		"https://lab.example/machines/3", "fabgate@lab.example", int64(0), uint16(60), uint8(0))
	f.Add(strings.Repeat("é", 80), "", "booking-2@x", strings.Repeat("Découpeuse; laser, \\ ", 8), "ligne 1\r\nligne 2\rligne 3\n", "a,b;c\\d",
		"", "", int64(1e9), uint16(1), uint8(1))
	f.Add("\x80\x80\x80"+strings.Repeat("\xbf", 100), "\xff", "\x00", "tab\there", "bell\a DEL\x7f", "\r\n\r\n",
		"https://x/\r\nATTENDEE:mailto:evil@x", "a@b\r\nX-EVIL:1", int64(-1e9), uint16(0), uint8(2))
	f.Add("", "", "", "", "", "", "", "", int64(0), uint16(0), uint8(3))
	f.Add(strings.Repeat("x", 74)+"é", "🦊"+strings.Repeat("🦊", 40), "\\n", "\\N", "END:VEVENT", "BEGIN:VEVENT\r\nUID:x",
		"mailto:", ":", int64(42), uint16(1440), uint8(4))
	f.Fuzz(func(t *testing.T, calName, zone, uid, summary, desc, location, url, organizer string, startSec int64, minutes uint16, flags uint8) {
		stamp := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)
		start := stamp.Add(time.Duration(startSec%(400*365*86400)) * time.Second)
		e := ical.Event{UID: uid, Sequence: int(flags % 3), Stamp: stamp, Start: start, End: start.Add(time.Duration(minutes) * time.Minute),
			Summary: summary, Description: desc, Location: location, URL: url, Organizer: organizer}
		cal := ical.Calendar{Name: calName, TimeZone: zone}
		switch flags % 4 {
		case 1:
			cal.Method, e.Status = ical.Request, ical.Confirmed
		case 2:
			cal.Method, e.Status = ical.Cancel, ical.Cancelled
		}
		cal.Events = []ical.Event{e}
		if flags&8 != 0 {
			cal.Events = append(cal.Events, e) // two events, the same text
		}
		doc := ical.Encode(cal)

		comps, err := strictParse(doc)
		if err != nil {
			t.Fatalf("%v\n%q", err, doc)
		}
		root := comps[0]
		if root.name != "VCALENDAR" || len(comps) != 1+len(cal.Events) {
			t.Fatalf("components %v, want a VCALENDAR and %d VEVENT", comps, len(cal.Events))
		}
		wantProps := []string{"VERSION", "PRODID", "CALSCALE"}
		wantProps = appendIf(wantProps, cal.Method != "", "METHOD")
		wantProps = appendIf(wantProps, cal.Name != "", "X-WR-CALNAME")
		wantProps = appendIf(wantProps, cal.TimeZone != "", "X-WR-TIMEZONE")
		root.expect(t, wantProps)
		root.text(t, "X-WR-CALNAME", cal.Name)
		root.text(t, "X-WR-TIMEZONE", cal.TimeZone)
		for _, ev := range comps[1:] {
			if ev.name != "VEVENT" {
				t.Fatalf("component %s, want VEVENT", ev.name)
			}
			want := []string{"UID"}
			want = appendIf(want, e.Sequence > 0, "SEQUENCE")
			want = append(want, "DTSTAMP", "DTSTART", "DTEND", "SUMMARY")
			want = appendIf(want, e.Description != "", "DESCRIPTION")
			want = appendIf(want, e.Location != "", "LOCATION")
			want = appendIf(want, e.URL != "", "URL")
			want = appendIf(want, e.Organizer != "", "ORGANIZER")
			want = appendIf(want, e.Status != "", "STATUS")
			want = append(want, "TRANSP")
			ev.expect(t, want)
			ev.text(t, "UID", e.UID)
			ev.text(t, "SUMMARY", e.Summary)
			ev.text(t, "DESCRIPTION", e.Description)
			ev.text(t, "LOCATION", e.Location)
			ev.raw(t, "URL", wantRaw(e.URL))
			ev.raw(t, "ORGANIZER", "mailto:"+wantRaw(e.Organizer))
			ev.raw(t, "DTSTART", e.Start.UTC().Format("20060102T150405Z"))
			ev.raw(t, "DTEND", e.End.UTC().Format("20060102T150405Z"))
		}

		// An independent reader agrees on the text.
		gc, err := goical.NewDecoder(bytes.NewReader(doc)).Decode()
		if err != nil {
			t.Fatalf("go-ical: %v\n%q", err, doc)
		}
		evs := gc.Events()
		if len(evs) != len(cal.Events) {
			t.Fatalf("go-ical reads %d events, want %d", len(evs), len(cal.Events))
		}
		for _, p := range []struct{ name, want string }{{goical.PropSummary, e.Summary}, {goical.PropUID, e.UID}, {goical.PropLocation, e.Location}} {
			if got, err := evs[0].Props.Text(p.name); err != nil || got != wantText(p.want) {
				t.Errorf("go-ical reads %s as %q (%v), want %q", p.name, got, err, wantText(p.want))
			}
		}
	})
}

func appendIf(s []string, cond bool, v string) []string {
	if cond {
		return append(s, v)
	}
	return s
}

// wantText is what a TEXT value written from s reads back as: bytes that
// are not UTF-8 become U+FFFD, every line break (CR LF, CR or LF) one LF,
// and the other control characters, which TEXT cannot hold (RFC 5545
// §3.3.11: TSAFE-CHAR), are gone; tabs stay.
func wantText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r >= 0x20 && r != 0x7f {
			return r
		}
		return -1
	}, s)
}

// wantRaw is what a URI or address value written from s reads back as:
// without control characters and valid UTF-8.
func wantRaw(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// component is a VCALENDAR or VEVENT with its properties in order.
type component struct {
	name  string
	props []prop
}

type prop struct{ name, value string }

func (c component) String() string { return c.name }

// expect checks the component's property names, in order.
func (c component) expect(t *testing.T, names []string) {
	t.Helper()
	var got []string
	for _, p := range c.props {
		got = append(got, p.name)
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s has the properties %v, want %v", c.name, got, names)
	}
}

func (c component) get(name string) (string, bool) {
	for _, p := range c.props {
		if p.name == name {
			return p.value, true
		}
	}
	return "", false
}

// text checks that the TEXT property name reads back as wantText(v), when
// the component has it.
func (c component) text(t *testing.T, name, v string) {
	t.Helper()
	raw, ok := c.get(name)
	if !ok {
		return
	}
	got, err := unescapeText(raw)
	if err != nil {
		t.Errorf("%s %s: %v", c.name, name, err)
	} else if got != wantText(v) {
		t.Errorf("%s %s reads back as %q, want %q", c.name, name, got, wantText(v))
	}
}

// raw checks a value that is not TEXT, when the component has it.
func (c component) raw(t *testing.T, name, want string) {
	t.Helper()
	if got, ok := c.get(name); ok && got != want {
		t.Errorf("%s %s reads back as %q, want %q", c.name, name, got, want)
	}
}

// strictParse reads a document the way RFC 5545 §3.1 writes it, refusing
// what a lenient reader would let pass: lines end in CR LF and hold no
// other CR or LF, are at most 75 octets and valid UTF-8 each (a fold does
// not split a character), continue after one space, and unfold into
// NAME:value with a name of letters, digits and dashes and a value without
// control characters other than tab. It returns the components in order
// of their BEGIN, which must nest and close.
func strictParse(doc []byte) ([]component, error) {
	if !bytes.HasSuffix(doc, []byte("\r\n")) {
		return nil, fmt.Errorf("the document does not end with CR LF")
	}
	var lines []string
	for i, l := range strings.Split(string(doc[:len(doc)-2]), "\r\n") {
		switch {
		case len(l) > 75:
			return nil, fmt.Errorf("line %d is %d octets: %q", i+1, len(l), l)
		case strings.ContainsAny(l, "\r\n"):
			return nil, fmt.Errorf("line %d holds a bare CR or LF: %q", i+1, l)
		case !utf8.ValidString(l):
			return nil, fmt.Errorf("line %d is not UTF-8 (a split character?): %q", i+1, l)
		case strings.HasPrefix(l, " "):
			if len(lines) == 0 || len(l) == 1 {
				return nil, fmt.Errorf("line %d continues nothing or adds nothing: %q", i+1, l)
			}
			lines[len(lines)-1] += l[1:]
		case strings.HasPrefix(l, "\t"):
			return nil, fmt.Errorf("line %d is folded with a tab", i+1)
		default:
			lines = append(lines, l)
		}
	}
	var out []component
	var open []int // indexes into out
	for _, l := range lines {
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" || strings.Trim(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return nil, fmt.Errorf("not a NAME:value line: %q", l)
		}
		if strings.IndexFunc(value, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) >= 0 {
			return nil, fmt.Errorf("%s holds a control character: %q", name, value)
		}
		switch name {
		case "BEGIN":
			if len(out) > 0 && len(open) == 0 {
				return nil, fmt.Errorf("BEGIN:%s after the calendar ended", value)
			}
			out = append(out, component{name: value})
			open = append(open, len(out)-1)
		case "END":
			if len(open) == 0 || out[open[len(open)-1]].name != value {
				return nil, fmt.Errorf("END:%s closes nothing open", value)
			}
			open = open[:len(open)-1]
		default:
			if len(open) == 0 {
				return nil, fmt.Errorf("%s outside any component", name)
			}
			c := &out[open[len(open)-1]]
			c.props = append(c.props, prop{name, value})
		}
	}
	if len(out) == 0 || len(open) != 0 {
		return nil, fmt.Errorf("components not closed")
	}
	return out, nil
}

// unescapeText reads a one-value TEXT (RFC 5545 §3.3.11): \\ \; \, \n \N
// are the only escapes, and ; and , must be escaped.
func unescapeText(v string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case ';', ',':
			return "", fmt.Errorf("unescaped %q in %q", c, v)
		case '\\':
			if i+1 == len(v) {
				return "", fmt.Errorf("a lone backslash ends %q", v)
			}
			i++
			switch v[i] {
			case '\\', ';', ',':
				b.WriteByte(v[i])
			case 'n', 'N':
				b.WriteByte('\n')
			default:
				return "", fmt.Errorf("unknown escape \\%c in %q", v[i], v)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
