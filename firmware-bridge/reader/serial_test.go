package reader

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// splitAll feeds b to a splitter whole, and again one byte at a time (as
// a port delivers it), and fails unless both give the same.
func splitAll(t *testing.T, terminator string, b []byte) (lines []string, dropped int) {
	t.Helper()
	whole := newLineSplitter(terminator)
	lines, drops := whole.feed(b)
	bytewise := newLineSplitter(terminator)
	var lines2, drops2 []string
	for i := range b {
		l, d := bytewise.feed(b[i : i+1])
		lines2, drops2 = append(lines2, l...), append(drops2, d...)
	}
	if !reflect.DeepEqual(lines, lines2) || len(drops) != len(drops2) {
		t.Fatalf("fed whole: %q, %d dropped; fed byte by byte: %q, %d dropped", lines, len(drops), lines2, len(drops2))
	}
	return lines, len(drops)
}

func TestSerialSplit(t *testing.T) {
	long := strings.Repeat("A", maxLine)
	tests := []struct {
		name        string
		terminator  string
		in          string
		wantLines   []string
		wantDropped int
	}{
		{"LF", "", "04A2B3C4\n0A1B\n", []string{"04A2B3C4", "0A1B"}, 0},
		{"CR", "", "04A2B3C4\r0A1B\r", []string{"04A2B3C4", "0A1B"}, 0},
		{"CRLF", "", "04A2B3C4\r\n0A1B\r\n", []string{"04A2B3C4", "0A1B"}, 0},
		{"mixed ends", "", "01\n02\r03\r\n04\n\r05\r\r\n", []string{"01", "02", "03", "04", "05"}, 0},
		{"trimmed", "", "  04:A2:B3:C4 \t\r\n", []string{"04:A2:B3:C4"}, 0},
		{"blank lines skipped", "", "\n\r\n  \n\t\n0A1B\n", []string{"0A1B"}, 0},
		{"no end yet", "", "0A1B", nil, 0},
		{"non-printable byte drops the line", "", "04A2\x00B3C4\n0A1B\n", []string{"0A1B"}, 1},
		{"high byte drops the line", "", "04A2\xffB3\r\n0A1B\r\n", []string{"0A1B"}, 1},
		{"escape drops the line", "", "\x1b[204A2\n", nil, 1},
		{"one count per garbage line", "", "\x01\x02\x03\x04\n", nil, 1},
		{"128 bytes is the longest line", "", long + "\n", []string{long}, 0},
		{"129 bytes is garbage", "", long + "B\n0A1B\n", []string{"0A1B"}, 1},
		{"a long line is garbage to its end", "", strings.Repeat("C", 1000) + "\n0A1B\n", []string{"0A1B"}, 1},
		{"ETX with STX framing", "\x03", "\x0204A2B3C4\x03\x020A1B\x03", []string{"04A2B3C4", "0A1B"}, 0},
		{"ETX then CRLF", "\x03", "\x0204A2B3C4\x03\r\n\x020A1B\x03\r\n", []string{"04A2B3C4", "0A1B"}, 0},
		{"custom terminator ignores CR and LF", ";", "04A2\r\nB3C4;0A1B;", []string{"04A2B3C4", "0A1B"}, 0},
		{"STX inside a line is garbage", "\x03", "04A2\x02B3\x030A1B\x03", []string{"0A1B"}, 1},
		{"LF not a terminator with ETX", "\x03", "04A2\n", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lines, dropped := splitAll(t, tc.terminator, []byte(tc.in))
			if !reflect.DeepEqual(lines, tc.wantLines) || dropped != tc.wantDropped {
				t.Errorf("got %q, %d dropped; want %q, %d dropped", lines, dropped, tc.wantLines, tc.wantDropped)
			}
		})
	}
}

func TestSerialConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     SerialConfig
		wantErr string // "" for none
	}{
		{"defaults", SerialConfig{Port: "/dev/ttyUSB0"}, ""},
		{"all set", SerialConfig{Port: "/dev/serial/by-id/usb-reader-port0", Baud: 115200, Terminator: "\x03"}, ""},
		{"no port", SerialConfig{}, "port: set the reader's serial device"},
		{"baud too low", SerialConfig{Port: "/dev/ttyUSB0", Baud: 9}, "baud: 9 must be"},
		{"negative baud", SerialConfig{Port: "/dev/ttyUSB0", Baud: -9600}, "baud: -9600 must be"},
		{"two-byte terminator", SerialConfig{Port: "/dev/ttyUSB0", Terminator: "\r\n"}, "terminator: \"\\r\\n\" must be one ASCII character"},
		{"non-ASCII terminator", SerialConfig{Port: "/dev/ttyUSB0", Terminator: "é"}, "terminator:"},
		{"hex digit terminator", SerialConfig{Port: "/dev/ttyUSB0", Terminator: "A"}, "terminator: \"A\" is a letter or digit"},
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
			if _, err := NewSerial(tc.cfg); err == nil {
				t.Error("NewSerial took a configuration Validate refuses")
			}
		})
	}
}

func TestSerialDefaultBaud(t *testing.T) {
	s, err := NewSerial(SerialConfig{Port: "/dev/ttyUSB0"})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Baud != 9600 {
		t.Errorf("baud %d, want 9600", s.cfg.Baud)
	}
}

func TestSerialOpenErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "ttyUSB0")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		port string
		want []string // all in the error
	}{
		{"missing", filepath.Join(dir, "ttyUSB9"), []string{filepath.Join(dir, "ttyUSB9"), "does not exist", "plugged in", "/dev/serial/by-id/"}},
		{"regular file", regular, []string{regular, "not a serial port"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSerial(SerialConfig{Port: tc.port})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Run(context.Background(), make(chan string))
			if err == nil {
				t.Fatal("Run opened it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	t.Run("already cancelled", func(t *testing.T) {
		s, err := NewSerial(SerialConfig{Port: regular})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Run(ctx, make(chan string)); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

// FuzzSerialSplit feeds arbitrary bytes to the line splitter: every line
// must be trimmed, printable and at most 128 bytes, and cutting the stream
// anywhere must not change the lines.
func FuzzSerialSplit(f *testing.F) {
	f.Add([]byte("04A2B3C4\r\n0A1B\n"), uint16(3), "")
	f.Add([]byte("04A2\x00B3C4\n\x1b[2J\r"), uint16(5), "")
	f.Add([]byte(strings.Repeat("A", 130)+"\n0A1B\r"), uint16(129), "")
	f.Add([]byte("\x0204A2B3C4\x03\r\n"), uint16(1), "\x03")
	f.Add([]byte("04A2;B3\r\nC4;"), uint16(9), ";")
	f.Fuzz(func(t *testing.T, b []byte, cut uint16, terminator string) {
		if (&SerialConfig{Port: "/dev/ttyUSB0", Terminator: terminator}).Validate() != nil {
			terminator = ""
		}
		lines, dropped := newLineSplitter(terminator).feed(b)
		k := int(cut) % (len(b) + 1)
		s := newLineSplitter(terminator)
		lines1, dropped1 := s.feed(b[:k])
		lines2, dropped2 := s.feed(b[k:])
		if !reflect.DeepEqual(lines, append(lines1, lines2...)) || len(dropped) != len(dropped1)+len(dropped2) {
			t.Fatalf("cut at %d: %q + %q, want %q", k, lines1, lines2, lines)
		}
		for _, l := range lines {
			if l == "" || len(l) > maxLine || l != strings.TrimSpace(l) {
				t.Fatalf("line %q is empty, untrimmed or longer than %d bytes", l, maxLine)
			}
			for i := 0; i < len(l); i++ {
				if c := l[i]; c != '\t' && (c < 0x20 || c > 0x7e) {
					t.Fatalf("line %q has the non-printable byte 0x%02x", l, c)
				}
			}
		}
	})
}
