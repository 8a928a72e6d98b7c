package reader

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync/atomic"

	"go.bug.st/serial"
)

// SerialConfig configures a badge reader on a serial port (a USB serial
// adapter or the Pi's UART) that sends one UID per line.
type SerialConfig struct {
	// Port is the serial device. Prefer the stable /dev/serial/by-id/…
	// link of a USB reader to /dev/ttyUSBn, whose number changes with the
	// order devices are found at boot.
	Port string `json:"port"`
	// Baud is the reader's speed; 0 means 9600, the speed most readers
	// ship with.
	Baud int `json:"baud,omitempty"`
	// Terminator, when set, is the one byte that ends a line instead of
	// CR, LF or CRLF: for readers that frame each UID, such as STX … ETX
	// ("\u0003"). CR and LF are then ignored, and so is an STX (0x02) that
	// starts a line.
	Terminator string `json:"terminator,omitempty"`
	// Log receives the lines dropped as garbage (at debug level); nil
	// discards them.
	Log *slog.Logger `json:"-"`
}

// defaultBaud is the speed most serial badge readers ship with.
const defaultBaud = 9600

// Validate checks the configuration; its messages say what to change.
func (c *SerialConfig) Validate() error {
	var errs []error
	if c.Port == "" {
		errs = append(errs, errors.New("serial reader: port: set the reader's serial device, e.g. /dev/serial/by-id/usb-…-port0 or /dev/ttyUSB0"))
	}
	if c.Baud != 0 && (c.Baud < 50 || c.Baud > 4000000) {
		errs = append(errs, fmt.Errorf("serial reader: baud: %d must be the reader's speed, from 50 to 4000000 (0: 9600)", c.Baud))
	}
	if t := c.Terminator; t != "" {
		switch {
		case len(t) != 1 || t[0] >= 0x80:
			errs = append(errs, fmt.Errorf("serial reader: terminator: %q must be one ASCII character, such as \"\\u0003\" (ETX), or empty for CR/LF", t))
		case isAlnum(t[0]):
			errs = append(errs, fmt.Errorf("serial reader: terminator: %q is a letter or digit, which a UID contains: choose the byte the reader sends after each UID", t))
		}
	}
	return errors.Join(errs...)
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// Serial reads a badge reader on a serial port, one UID per line.
type Serial struct {
	cfg     SerialConfig
	log     *slog.Logger
	garbage atomic.Uint64
	// opened, when set (by tests), is called once the port is open and
	// configured, before the first read.
	opened func()
}

// NewSerial returns a reader for cfg. It does not open the port: Run does,
// each time it is called, so a reader plugged in after the bridge started
// (or plugged in again) is picked up by the bridge's next Run.
func NewSerial(cfg SerialConfig) (*Serial, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Baud == 0 {
		cfg.Baud = defaultBaud
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Serial{cfg: cfg, log: log}, nil
}

// Garbage reports how many lines were dropped as garbage since the reader
// was made: lines with bytes that are not printable ASCII (line noise, a
// wrong baud rate) or longer than 128 bytes.
func (s *Serial) Garbage() uint64 { return s.garbage.Load() }

// Run implements Reader. It opens the port (raw, 8N1, at the configured
// speed) and reads until ctx ends or the port fails, as it does when the
// reader is unplugged.
func (s *Serial) Run(ctx context.Context, reads chan<- string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	port, err := serial.Open(s.cfg.Port, &serial.Mode{BaudRate: s.cfg.Baud})
	if err != nil {
		return s.openError(err)
	}
	defer port.Close()
	// Closing the port is what interrupts a pending read.
	stop := context.AfterFunc(ctx, func() { _ = port.Close() })
	defer stop()
	s.log.Debug("badge reader opened", "port", s.cfg.Port, "baud", s.cfg.Baud)
	if s.opened != nil {
		s.opened()
	}
	split := newLineSplitter(s.cfg.Terminator)
	buf := make([]byte, 256)
	for {
		n, err := port.Read(buf)
		got, dropped := split.feed(buf[:n])
		for _, reason := range dropped {
			s.garbage.Add(1)
			s.log.Debug("badge read dropped as garbage", "port", s.cfg.Port, "reason", reason)
		}
		for _, line := range got {
			select {
			case reads <- line:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reader: serial port %s failed (unplugged?); it is opened again when it is back: %w", s.cfg.Port, err)
		}
	}
}

// openError explains why the port did not open.
func (s *Serial) openError(err error) error {
	p := s.cfg.Port
	var perr *serial.PortError
	if errors.As(err, &perr) {
		switch perr.Code() {
		case serial.PermissionDenied:
			return fmt.Errorf("reader: no permission to open serial port %s: add the bridge's user to the dialout group: %w", p, err)
		case serial.PortBusy:
			return fmt.Errorf("reader: serial port %s is busy: another program (a login console on the UART, ModemManager) has it open: %w", p, err)
		case serial.InvalidSerialPort:
			return fmt.Errorf("reader: %s is not a serial port, or does not take baud %d: point port at the reader's /dev/serial/by-id/… link: %w", p, s.cfg.Baud, err)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reader: serial port %s does not exist: check that the reader is plugged in and the path (ls -l /dev/serial/by-id/): %w", p, err)
	}
	return fmt.Errorf("reader: open serial port %s: %w", p, err)
}

// maxLine is the longest line a serial reader sends: a UID, a few framing
// characters, and room to spare.
const maxLine = 128

// lineSplitter cuts a serial byte stream into badge reads. It is fed the
// bytes as they come.
type lineSplitter struct {
	custom  bool // term ends lines, not CR and LF
	term    byte
	line    []byte
	garbage string // why the line in progress is garbage, "" while it is not
}

func newLineSplitter(terminator string) *lineSplitter {
	s := &lineSplitter{line: make([]byte, 0, maxLine)}
	if terminator != "" {
		s.custom, s.term = true, terminator[0]
	}
	return s
}

// stx starts a frame in readers that end one with ETX.
const stx = 0x02

// feed splits p and returns the complete lines, trimmed, and for each line
// dropped as garbage why it was dropped. Blank lines are skipped, so CRLF
// is one line end. A garbage line is dropped as a whole, up to its end.
func (s *lineSplitter) feed(p []byte) (lines, dropped []string) {
	for _, c := range p {
		switch {
		case s.custom && c == s.term, !s.custom && (c == '\r' || c == '\n'):
			wasGarbage := s.garbage != ""
			line := strings.TrimSpace(string(s.line))
			s.line, s.garbage = s.line[:0], ""
			if !wasGarbage && line != "" {
				lines = append(lines, line)
			}
		case s.custom && (c == '\r' || c == '\n'):
		case s.custom && c == stx && len(s.line) == 0 && s.garbage == "":
		case s.garbage != "":
		case c != '\t' && (c < 0x20 || c > 0x7e):
			s.line, s.garbage = s.line[:0], fmt.Sprintf("byte 0x%02x is not printable ASCII", c)
			dropped = append(dropped, s.garbage)
		case len(s.line) == maxLine:
			s.line, s.garbage = s.line[:0], fmt.Sprintf("line longer than %d bytes", maxLine)
			dropped = append(dropped, s.garbage)
		default:
			s.line = append(s.line, c)
		}
	}
	return lines, dropped
}
