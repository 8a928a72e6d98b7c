package reader

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testWait bounds every wait of these tests; nothing here takes more than
// a few milliseconds when it works.
const testWait = 10 * time.Second

var (
	layout64 = eventLayout{size: 24, order: binary.LittleEndian} // arm64, amd64
	layout32 = eventLayout{size: 16, order: binary.LittleEndian} // arm
)

// inputEvent is one struct input_event, less its timestamp.
type inputEvent struct {
	typ, code uint16
	value     int32
}

// encodeEvents writes events as the kernel does, with a made-up timestamp.
func encodeEvents(l eventLayout, events ...inputEvent) []byte {
	var b []byte
	for i, e := range events {
		rec := make([]byte, l.size)
		half := (l.size - 8) / 2
		if half == 8 {
			l.order.PutUint64(rec, 1767258030)
			l.order.PutUint64(rec[8:], uint64(i))
		} else {
			l.order.PutUint32(rec, 1767258030)
			l.order.PutUint32(rec[4:], uint32(i))
		}
		l.order.PutUint16(rec[l.size-8:], e.typ)
		l.order.PutUint16(rec[l.size-6:], e.code)
		l.order.PutUint32(rec[l.size-4:], uint32(e.value))
		b = append(b, rec...)
	}
	return b
}

// Key codes the tests type (linux/input-event-codes.h).
var testKeys = map[rune]uint16{
	'0': 11, '1': 2, '2': 3, '3': 4, '4': 5, '5': 6, '6': 7, '7': 8, '8': 9, '9': 10,
	'A': 30, 'B': 48, 'C': 46, 'D': 32, 'E': 18, 'F': 33,
	'G': 34, 'X': 45, '-': 12, ' ': 57,
	'\n': keyEnter,
}

// typed is what a reader sends to type s: for each key a press, a
// release and a sync report.
func typed(s string) []inputEvent {
	var evs []inputEvent
	for _, c := range s {
		code, ok := testKeys[c]
		if !ok {
			panic("no key for " + string(c))
		}
		evs = append(evs, keyStroke(code)...)
	}
	return evs
}

func keyStroke(code uint16) []inputEvent {
	return []inputEvent{{evKey, code, 1}, {evSyn, 0, 0}, {evKey, code, 0}, {evSyn, 0, 0}}
}

func join(parts ...[]inputEvent) []inputEvent {
	var all []inputEvent
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// readHexFixture reads a testdata file of hexadecimal bytes; # starts a
// comment.
func readHexFixture(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var digits strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// decodeAll feeds b to a decoder whole, and again one byte at a time (as
// a pipe may cut it), and fails unless both give the same.
func decodeAll(t *testing.T, l eventLayout, decimal string, b []byte) (reads []string, dropped int) {
	t.Helper()
	whole := newKeyDecoder(l, decimal)
	reads, drops := whole.feed(b)
	bytewise := newKeyDecoder(l, decimal)
	var reads2, drops2 []string
	for i := range b {
		r, d := bytewise.feed(b[i : i+1])
		reads2, drops2 = append(reads2, r...), append(drops2, d...)
	}
	if !reflect.DeepEqual(reads, reads2) || len(drops) != len(drops2) {
		t.Fatalf("fed whole: %q, %d dropped; fed byte by byte: %q, %d dropped", reads, len(drops), reads2, len(drops2))
	}
	return reads, len(drops)
}

func TestEvdevDecodeFixtures(t *testing.T) {
	for _, tc := range []struct {
		file   string
		layout eventLayout
	}{
		{"evdev-64bit.hex", layout64},
		{"evdev-32bit.hex", layout32},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b := readHexFixture(t, tc.file)
			if len(b)%tc.layout.size != 0 {
				t.Fatalf("%d bytes are not whole %d-byte records", len(b), tc.layout.size)
			}
			reads, dropped := decodeAll(t, tc.layout, "", b)
			if want := []string{"4A"}; !reflect.DeepEqual(reads, want) || dropped != 0 {
				t.Errorf("got %q, %d dropped; want %q, none dropped", reads, dropped, want)
			}
		})
	}
}

func TestEvdevDecode(t *testing.T) {
	tests := []struct {
		name        string
		decimal     string
		events      []inputEvent
		wantReads   []string
		wantDropped int
	}{
		{"hex UID", "", typed("04A2B3C4\n"), []string{"04A2B3C4"}, 0},
		{"two reads", "", typed("0A1B\nDEADBEEF\n"), []string{"0A1B", "DEADBEEF"}, 0},
		{"keypad digits and keypad Enter", "", join(
			keyStroke(82), keyStroke(79), keyStroke(73), keyStroke(71), keyStroke(keyKPEnter),
		), []string{"0197"}, 0},
		{"repeats and releases ignored", "", []inputEvent{
			{evKey, 30, 1}, {evKey, 30, 2}, {evKey, 30, 2}, {evKey, 30, 0},
			{evKey, 48, 1}, {evKey, 48, 0}, {evKey, keyEnter, 1}, {evKey, keyEnter, 2}, {evKey, keyEnter, 0},
		}, []string{"AB"}, 0},
		{"shift, caps lock and num lock ignored", "", join(
			keyStroke(42), keyStroke(58), keyStroke(69), typed("0A"), keyStroke(54), typed("B\n"),
		), []string{"0AB"}, 0},
		{"scan codes and sync reports ignored", "", []inputEvent{
			{4, 4, 0x70027}, {evKey, 11, 1}, {evSyn, 0, 0}, {evKey, 11, 0}, {evKey, 2, 1}, {evKey, keyEnter, 1},
		}, []string{"01"}, 0},
		{"empty read skipped, not garbage", "", typed("\n\n12\n"), []string{"12"}, 0},
		{"other letter drops the whole read", "", typed("04G2B3C4\n"), nil, 1},
		{"read after garbage is kept", "", typed("XX12\n3456\n"), []string{"3456"}, 1},
		{"other key drops the read", "", typed("04-A2\n"), nil, 1},
		{"64 characters is the longest read", "", typed(strings.Repeat("AB", 32) + "\n"), []string{strings.Repeat("AB", 32)}, 0},
		{"65 characters is garbage", "", typed(strings.Repeat("AB", 32) + "C\n1234\n"), []string{"1234"}, 1},
		{"lost events drop the read", "", join(typed("04A2"), []inputEvent{{evSyn, synDropped, 0}}, typed("B3\n12\n")), []string{"12"}, 1},
		{"no Enter: nothing read", "", typed("04A2B3"), nil, 0},
		{"decimal msb", DecimalMSB, typed("0077771716\n"), []string{"04A2B3C4"}, 0},
		{"decimal lsb", DecimalLSB, typed("3300106756\n"), []string{"04A2B3C4"}, 0},
		{"decimal 7-byte UID lsb", DecimalLSB, typed("69778125050061316\n"), []string{"04A2B3C4D5E6F7"}, 0},
		{"hex letter in a decimal read", DecimalMSB, typed("0077A71716\n0000004660\n"), []string{"00001234"}, 1},
		{"decimal number too large", DecimalMSB, typed("18446744073709551616\n"), nil, 1},
		{"decimal read too long", DecimalMSB, typed("123456789012345678901\n"), nil, 1},
	}
	for _, tc := range tests {
		for _, l := range []eventLayout{layout64, layout32} {
			t.Run(tc.name+"/"+map[int]string{24: "64-bit", 16: "32-bit"}[l.size], func(t *testing.T) {
				reads, dropped := decodeAll(t, l, tc.decimal, encodeEvents(l, tc.events...))
				if !reflect.DeepEqual(reads, tc.wantReads) || dropped != tc.wantDropped {
					t.Errorf("got %q, %d dropped; want %q, %d dropped", reads, dropped, tc.wantReads, tc.wantDropped)
				}
			})
		}
	}
}

func TestEvdevDecimalUID(t *testing.T) {
	tests := []struct {
		digits, order, want string
		wantErr             bool
	}{
		{"0077771716", DecimalMSB, "04A2B3C4", false},
		{"77771716", DecimalMSB, "04A2B3C4", false}, // 8 digits: 3 bytes wide, but the value needs 4
		{"3300106756", DecimalLSB, "04A2B3C4", false},
		{"0000004660", DecimalMSB, "00001234", false}, // zero padding keeps the width
		{"0000004660", DecimalLSB, "34120000", false},
		{"255", DecimalMSB, "FF", false},
		{"256", DecimalMSB, "0100", false},
		{"01304792892040951", DecimalMSB, "04A2B3C4D5E6F7", false},
		{"69778125050061316", DecimalLSB, "04A2B3C4D5E6F7", false},
		{"18446744073709551615", DecimalMSB, "FFFFFFFFFFFFFFFF", false},
		{"18446744073709551616", DecimalMSB, "", true},
		{"123456789012345678901", DecimalMSB, "", true},
		{"", DecimalMSB, "", true},
		{"12a4", DecimalMSB, "", true},
	}
	for _, tc := range tests {
		got, err := DecimalUID(tc.digits, tc.order)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("DecimalUID(%q, %q) = %q, %v; want %q, error %v", tc.digits, tc.order, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestEvdevConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     EvdevConfig
		wantErr string // "" for none
	}{
		{"by-id path", EvdevConfig{Path: "/dev/input/by-id/usb-reader-event-kbd"}, ""},
		{"decimal lsb", EvdevConfig{Path: "/dev/input/event3", Decimal: "lsb"}, ""},
		{"no path", EvdevConfig{}, "path: set the reader's input device"},
		{"relative path", EvdevConfig{Path: "event3"}, "path: \"event3\" must be an absolute path"},
		{"bad decimal", EvdevConfig{Path: "/dev/input/event3", Decimal: "yes"}, "decimal: \"yes\" must be empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want an error with %q", err, tc.wantErr)
			}
			if _, err := NewEvdev(tc.cfg); err == nil {
				t.Error("NewEvdev took a configuration Validate refuses")
			}
		})
	}
}

// recvRead waits for a read.
func recvRead(t *testing.T, reads <-chan string) string {
	t.Helper()
	select {
	case s := <-reads:
		return s
	case <-time.After(testWait):
		t.Fatal("no read")
		return ""
	}
}

// recvErr waits for Run to return.
func recvErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(testWait):
		t.Fatal("Run did not return")
		return nil
	}
}

const testEvdevPath = "/dev/input/by-id/usb-test-reader-event-kbd"

// The read loop is tested on a pipe: with no /dev/uinput on the test
// machines no virtual input device can be made, and a pipe delivers the
// same records, cut anywhere, and ends like an unplugged device.
func TestEvdevReadEventsPipe(t *testing.T) {
	e, err := NewEvdev(EvdevConfig{Path: testEvdevPath})
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reads := make(chan string)
	errc := make(chan error, 1)
	go func() { errc <- e.readEvents(context.Background(), r, layout64, reads) }()

	fixture := readHexFixture(t, "evdev-64bit.hex")
	if _, err := w.Write(fixture[:30]); err != nil { // a record cut in two
		t.Fatal(err)
	}
	if _, err := w.Write(fixture[30:]); err != nil {
		t.Fatal(err)
	}
	if got := recvRead(t, reads); got != "4A" {
		t.Errorf("read %q, want 4A", got)
	}
	if _, err := w.Write(encodeEvents(layout64, typed("04G2\n0A1B\n")...)); err != nil {
		t.Fatal(err)
	}
	if got := recvRead(t, reads); got != "0A1B" {
		t.Errorf("read %q, want 0A1B", got)
	}
	if g := e.Garbage(); g != 1 {
		t.Errorf("Garbage() = %d, want 1", g)
	}

	w.Close()
	err = recvErr(t, errc)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), testEvdevPath) {
		t.Errorf("Run returned %v, want io.ErrUnexpectedEOF naming %s", err, testEvdevPath)
	}
}

// unpluggedDevice returns its data, then the error an evdev read returns
// once the device is unplugged.
type unpluggedDevice struct{ data []byte }

func (d *unpluggedDevice) Read(p []byte) (int, error) {
	if len(d.data) > 0 {
		n := copy(p, d.data)
		d.data = d.data[n:]
		return n, nil
	}
	return 0, &fs.PathError{Op: "read", Path: testEvdevPath, Err: syscall.ENODEV}
}

func (d *unpluggedDevice) Close() error { return nil }

func TestEvdevUnplugged(t *testing.T) {
	e, err := NewEvdev(EvdevConfig{Path: testEvdevPath})
	if err != nil {
		t.Fatal(err)
	}
	reads := make(chan string, 1)
	dev := &unpluggedDevice{data: encodeEvents(layout32, typed("0A1B\n")...)}
	err = e.readEvents(context.Background(), dev, layout32, reads)
	if !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), "unplugged") {
		t.Errorf("Run returned %v, want ENODEV saying unplugged", err)
	}
	if got := recvRead(t, reads); got != "0A1B" {
		t.Errorf("read %q before the unplug, want 0A1B", got)
	}
}

func TestEvdevCancel(t *testing.T) {
	e, err := NewEvdev(EvdevConfig{Path: testEvdevPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("waiting for input", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- e.readEvents(ctx, r, layout64, make(chan string)) }()
		cancel()
		if err := recvErr(t, errc); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	t.Run("read not taken", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		dev := &unpluggedDevice{data: encodeEvents(layout64, typed("0A1B\n")...)}
		go func() { errc <- e.readEvents(ctx, dev, layout64, make(chan string)) }()
		cancel()
		if err := recvErr(t, errc); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := e.Run(ctx, make(chan string)); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

// FuzzEvdevDecode feeds arbitrary bytes as input events: every read must
// be hexadecimal of at most 64 characters, and cutting the stream
// anywhere must not change what is read.
func FuzzEvdevDecode(f *testing.F) {
	f.Add(readHexFixture(f, "evdev-64bit.hex"), uint16(7), false, "")
	f.Add(readHexFixture(f, "evdev-32bit.hex"), uint16(5), true, "")
	f.Add(encodeEvents(layout64, typed("04G2\n0A1B\n")...), uint16(24), false, "")
	f.Add(encodeEvents(layout32, typed("3300106756\n")...), uint16(3), true, DecimalLSB)
	f.Add(encodeEvents(layout64, typed("18446744073709551615\n")...), uint16(0), false, DecimalMSB)
	f.Fuzz(func(t *testing.T, b []byte, cut uint16, small bool, decimal string) {
		l := layout64
		if small {
			l = layout32
		}
		if decimal != DecimalMSB && decimal != DecimalLSB {
			decimal = ""
		}
		whole := newKeyDecoder(l, decimal)
		reads, dropped := whole.feed(b)
		k := int(cut) % (len(b) + 1)
		parts := newKeyDecoder(l, decimal)
		reads1, dropped1 := parts.feed(b[:k])
		reads2, dropped2 := parts.feed(b[k:])
		if !reflect.DeepEqual(reads, append(reads1, reads2...)) || len(dropped) != len(dropped1)+len(dropped2) {
			t.Fatalf("cut at %d: %q + %q, want %q", k, reads1, reads2, reads)
		}
		for _, r := range reads {
			if r == "" || len(r) > maxTyped || strings.Trim(r, "0123456789ABCDEF") != "" {
				t.Fatalf("read %q is not 1 to %d hexadecimal digits", r, maxTyped)
			}
			if decimal != "" && (len(r)%2 != 0 || len(r) > 16) {
				t.Fatalf("decimal read converted to %q: want whole bytes, at most 8", r)
			}
		}
	})
}
