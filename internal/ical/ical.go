// Package ical writes iCalendar (RFC 5545) documents: the personal booking
// feed a maker subscribes to from a phone, and the .ics attached to a booking
// confirmation. It writes only what FabGate needs: events with UTC times.
package ical

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Method is the iTIP method of a calendar (RFC 5546). A subscribed feed
// has none; a mailed invitation is a Request, a withdrawn one a Cancel.
type Method string

// The methods FabGate sends.
const (
	Publish Method = "PUBLISH"
	Request Method = "REQUEST"
	Cancel  Method = "CANCEL"
)

// Status is an event's STATUS.
type Status string

// The event statuses FabGate uses.
const (
	Confirmed Status = "CONFIRMED"
	Cancelled Status = "CANCELLED"
)

// Calendar is one VCALENDAR.
type Calendar struct {
	// Name is shown by calendar apps as the feed's title (X-WR-CALNAME).
	Name string
	// TimeZone is the lab's zone, given as a hint (X-WR-TIMEZONE); every
	// time is written in UTC, so no VTIMEZONE is needed.
	TimeZone string
	Method   Method
	Events   []Event
}

// Event is one VEVENT.
type Event struct {
	UID         string // stable across updates: e.g. booking-42@lab.example
	Sequence    int    // incremented when the event changes
	Stamp       time.Time
	Start, End  time.Time
	Summary     string
	Description string
	Location    string
	URL         string
	Status      Status
	// Organizer is a mail address (mailto: is added); required with Method
	// Request or Cancel.
	Organizer string
}

// Encode writes cal as an RFC 5545 document: CRLF line ends, lines folded
// at 75 octets without splitting a UTF-8 character, TEXT values escaped.
// Whatever the values hold (names come from people), the document stays
// well formed: bytes that are not UTF-8 become U+FFFD, and control
// characters, which no value may hold, are dropped (in TEXT, line breaks
// are written as \n and tabs kept).
func Encode(cal Calendar) []byte {
	var w writer
	w.line("BEGIN", "VCALENDAR")
	w.line("VERSION", "2.0")
	w.line("PRODID", "-//FabGate//FabGate//EN")
	w.line("CALSCALE", "GREGORIAN")
	if cal.Method != "" {
		w.line("METHOD", string(cal.Method))
	}
	if cal.Name != "" {
		w.line("X-WR-CALNAME", text(cal.Name))
	}
	if cal.TimeZone != "" {
		w.line("X-WR-TIMEZONE", text(cal.TimeZone))
	}
	for _, e := range cal.Events {
		w.line("BEGIN", "VEVENT")
		w.line("UID", text(e.UID))
		if e.Sequence > 0 {
			w.line("SEQUENCE", strconv.Itoa(e.Sequence))
		}
		w.line("DTSTAMP", utc(e.Stamp))
		w.line("DTSTART", utc(e.Start))
		w.line("DTEND", utc(e.End))
		w.line("SUMMARY", text(e.Summary))
		if e.Description != "" {
			w.line("DESCRIPTION", text(e.Description))
		}
		if e.Location != "" {
			w.line("LOCATION", text(e.Location))
		}
		if e.URL != "" {
			w.line("URL", plain(e.URL))
		}
		if e.Organizer != "" {
			w.line("ORGANIZER", "mailto:"+plain(e.Organizer))
		}
		if e.Status != "" {
			w.line("STATUS", string(e.Status))
		}
		w.line("TRANSP", "OPAQUE")
		w.line("END", "VEVENT")
	}
	w.line("END", "VCALENDAR")
	return w.buf.Bytes()
}

// ContentType is the MIME type of an Encode result with the given method.
func ContentType(m Method) string {
	if m == "" {
		return "text/calendar; charset=utf-8"
	}
	return "text/calendar; charset=utf-8; method=" + string(m)
}

type writer struct{ buf bytes.Buffer }

// line writes "NAME:value", folded (RFC 5545 §3.1): a line longer than 75
// octets continues on the next line after a CRLF and one space.
func (w *writer) line(name, value string) {
	s := name + ":" + value
	n := 0
	for len(s) > 0 {
		limit := 75
		if n > 0 {
			limit = 74 // the leading space counts
			w.buf.WriteByte(' ')
		}
		if len(s) <= limit {
			w.buf.WriteString(s)
			break
		}
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 { // not UTF-8: values are made valid before, but never loop
			cut = limit
		}
		w.buf.WriteString(s[:cut])
		w.buf.WriteString("\r\n")
		s = s[cut:]
		n++
	}
	w.buf.WriteString("\r\n")
}

// text escapes a TEXT value (RFC 5545 §3.3.11): backslash, semicolon and
// comma get a backslash, a line break (CR LF, CR or LF) becomes \n, other
// control characters but tab are dropped (TEXT cannot hold them), and bytes
// that are not UTF-8 become U+FFFD.
func text(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c == ';' || c == ',':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\r' || c == '\n':
			if c == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			b.WriteString(`\n`)
		case isControl(c) && c != '\t':
			// dropped
		default:
			b.WriteByte(c) // UTF-8 sequences are bytes of 0x80 and above
		}
	}
	return b.String()
}

// plain is a value that is not TEXT (a URI, a mail address): valid UTF-8
// without control characters, which would end or corrupt the line.
func plain(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if !isControl(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// isControl reports an ASCII control character (RFC 5545's CTL).
func isControl(c byte) bool { return c < 0x20 || c == 0x7f }

func utc(t time.Time) string { return t.UTC().Format("20060102T150405Z") }
