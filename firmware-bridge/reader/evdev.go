package reader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
)

// EvdevConfig configures a USB keyboard-wedge badge reader: a reader that
// types the UID as key presses and ends it with Enter.
type EvdevConfig struct {
	// Path is the reader's input event device. Prefer the stable
	// /dev/input/by-id/usb-…-event-kbd link to /dev/input/eventN, whose
	// number changes with the order devices are found at boot.
	Path string `json:"path"`
	// Decimal is set for readers that type the UID as a decimal number
	// instead of hexadecimal; see DecimalUID for the exact conversion.
	// "" (hexadecimal, the default), "msb" or "lsb".
	Decimal string `json:"decimal,omitempty"`
	// Log receives the reads dropped as garbage (at debug level); nil
	// discards them.
	Log *slog.Logger `json:"-"`
}

// Validate checks the configuration; its messages say what to change.
func (c *EvdevConfig) Validate() error {
	var errs []error
	switch {
	case c.Path == "":
		errs = append(errs, errors.New("evdev reader: path: set the reader's input device, e.g. /dev/input/by-id/usb-…-event-kbd (ls /dev/input/by-id/)"))
	case !filepath.IsAbs(c.Path):
		errs = append(errs, fmt.Errorf("evdev reader: path: %q must be an absolute path such as /dev/input/by-id/usb-…-event-kbd", c.Path))
	}
	if c.Decimal != "" && c.Decimal != DecimalMSB && c.Decimal != DecimalLSB {
		errs = append(errs, fmt.Errorf("evdev reader: decimal: %q must be empty (the reader types hexadecimal), %q or %q", c.Decimal, DecimalMSB, DecimalLSB))
	}
	return errors.Join(errs...)
}

// Evdev reads a USB keyboard-wedge badge reader through the Linux input
// event interface. Reading evdev key codes rather than a terminal's
// characters keeps the reader independent of the console's keyboard layout,
// and the exclusive grab keeps the typed UIDs away from any console or
// login prompt.
type Evdev struct {
	cfg     EvdevConfig
	log     *slog.Logger
	garbage atomic.Uint64
}

// NewEvdev returns a reader for cfg. It does not open the device: Run does,
// each time it is called, so a reader plugged in after the bridge started
// (or plugged in again) is picked up by the bridge's next Run.
func NewEvdev(cfg EvdevConfig) (*Evdev, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Evdev{cfg: cfg, log: log}, nil
}

// Garbage reports how many reads were dropped as garbage since the reader
// was made: keys that are not part of a UID, reads longer than 64
// characters, events the kernel lost. A count that keeps growing points at
// a reader set to another output format (see EvdevConfig.Decimal).
func (e *Evdev) Garbage() uint64 { return e.garbage.Load() }

// Run implements Reader. It opens the device, grabs it for itself, and
// reads until ctx ends or the device fails; an unplugged reader ends Run
// with an error that wraps syscall.ENODEV.
func (e *Evdev) Run(ctx context.Context, reads chan<- string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := openEvdev(e.cfg.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	e.log.Debug("badge reader opened", "path", e.cfg.Path)
	return e.readEvents(ctx, f, nativeEventLayout, reads)
}

// readEvents decodes the input events read from f and sends the badge
// reads. f is closed when ctx ends: closing it is the one way to interrupt
// a pending read.
func (e *Evdev) readEvents(ctx context.Context, f io.ReadCloser, layout eventLayout, reads chan<- string) error {
	stop := context.AfterFunc(ctx, func() { _ = f.Close() })
	defer stop()
	dec := newKeyDecoder(layout, e.cfg.Decimal)
	// evdev returns whole records only, and fails a read shorter than one.
	buf := make([]byte, 64*layout.size)
	for {
		n, err := f.Read(buf)
		got, dropped := dec.feed(buf[:n])
		for _, reason := range dropped {
			e.garbage.Add(1)
			e.log.Debug("badge read dropped as garbage", "path", e.cfg.Path, "reason", reason)
		}
		for _, s := range got {
			select {
			case reads <- s:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			switch {
			case errors.Is(err, syscall.ENODEV):
				return fmt.Errorf("reader: evdev %s is gone (unplugged?); it is opened again when it is back: %w", e.cfg.Path, err)
			case errors.Is(err, io.EOF):
				return fmt.Errorf("reader: evdev %s ended: %w", e.cfg.Path, io.ErrUnexpectedEOF)
			default:
				return fmt.Errorf("reader: evdev %s: %w", e.cfg.Path, err)
			}
		}
	}
}

// Values of EvdevConfig.Decimal.
const (
	// DecimalMSB: the typed number is the UID read as one big-endian
	// integer, its first byte the most significant.
	DecimalMSB = "msb"
	// DecimalLSB: the typed number is the UID read as one little-endian
	// integer, its first byte the least significant (the UID's bytes
	// reversed), as many "10-digit" readers of 4-byte UIDs type it.
	DecimalLSB = "lsb"
)

// maxTyped is the longest read a keyboard-wedge reader types: 32 bytes of
// UID in hexadecimal, the most fablab.NormalizeUID takes.
const maxTyped = 64

// decimalWidth[n] is the number of decimal digits of the largest n-byte
// number (256ⁿ−1): a 10-digit number is 4 bytes wide, a 17-digit one 7.
var decimalWidth = [...]int{0, 3, 5, 8, 10, 13, 15, 17, 20}

// DecimalUID converts a UID typed in decimal to the hexadecimal that
// fablab.NormalizeUID takes. The conversion:
//
//  1. digits is read as an unsigned integer of at most 64 bits (at most
//     20 digits; a larger number is an error).
//  2. Its width in bytes is the smallest n whose largest value 256ⁿ−1 has
//     at least as many digits as were typed (3 digits: 1 byte, 5: 2, 8: 3,
//     10: 4, 13: 5, 15: 6, 17: 7, 20: 8), or more if the value needs more.
//     Readers pad the number with leading zeros to a fixed width, which
//     keeps a UID's leading zero bytes: "0000004660" is 00 00 12 34.
//     Unpadded, "77771716" has 8 digits (3 bytes) but its value needs 4:
//     04 A2 B3 C4.
//  3. The value is written as n big-endian bytes; order DecimalLSB then
//     reverses them.
//  4. The bytes are written as upper-case hexadecimal, two digits each.
//
// So the UID 04 A2 B3 C4 is typed "0077771716" by an "msb" reader
// (0x04A2B3C4) and "3300106756" by an "lsb" reader (0xC4B3A204); both
// convert back to "04A2B3C4".
func DecimalUID(digits, order string) (string, error) {
	if len(digits) == 0 || len(digits) > decimalWidth[8] {
		return "", fmt.Errorf("reader: a decimal UID has 1 to 20 digits, got %d", len(digits))
	}
	v, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return "", fmt.Errorf("reader: decimal UID %q: %w", digits, err)
	}
	n := 1
	for decimalWidth[n] < len(digits) {
		n++
	}
	n = max(n, (bits.Len64(v)+7)/8)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	uid := b[8-n:]
	if order == DecimalLSB {
		for i, j := 0, len(uid)-1; i < j; i, j = i+1, j-1 {
			uid[i], uid[j] = uid[j], uid[i]
		}
	}
	const hexDigits = "0123456789ABCDEF"
	out := make([]byte, 0, 2*n)
	for _, c := range uid {
		out = append(out, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return string(out), nil
}

// eventLayout is where the fields of a struct input_event lie. Its
// timestamp is a struct timeval: two C longs, so a record is 24 bytes on
// 64-bit Linux and 16 on 32-bit (linux/arm, even with a 64-bit time_t:
// the evdev ABI keeps longs). type, code and value follow the timestamp.
type eventLayout struct {
	size  int
	order binary.ByteOrder
}

// Linux input event types and codes used by the decoder
// (linux/input-event-codes.h).
const (
	evSyn = 0x00
	evKey = 0x01

	synDropped = 3 // the kernel's buffer overflowed: events were lost

	keyEnter   = 28
	keyKPEnter = 96
)

// keyChars maps the key codes a UID is typed with to their characters.
// Codes are positions on a US keyboard, which is what a reader emulates,
// whatever layout the console uses.
var keyChars = map[uint16]byte{
	11: '0', 2: '1', 3: '2', 4: '3', 5: '4', 6: '5', 7: '6', 8: '7', 9: '8', 10: '9',
	30: 'A', 48: 'B', 46: 'C', 32: 'D', 18: 'E', 33: 'F',
	82: '0', 79: '1', 80: '2', 81: '3', 75: '4', 76: '5', 77: '6', 71: '7', 72: '8', 73: '9', // keypad
}

// ignoredKeys are keys a reader may press around the characters without
// changing them: Shift for upper-case A–F, and the lock keys some readers
// toggle before typing keypad digits.
var ignoredKeys = map[uint16]bool{
	42: true, // left shift
	54: true, // right shift
	58: true, // caps lock
	69: true, // num lock
}

// keyDecoder turns the input_event records of a keyboard-wedge reader
// into badge reads. It is fed the bytes read from the device as they come.
type keyDecoder struct {
	layout  eventLayout
	decimal string
	partial []byte // the start of a record split between two reads
	typed   []byte // the characters of the read in progress
	garbage string // why the read in progress is garbage, "" while it is not
}

func newKeyDecoder(layout eventLayout, decimal string) *keyDecoder {
	return &keyDecoder{layout: layout, decimal: decimal, typed: make([]byte, 0, maxTyped)}
}

// feed decodes the records in p (and any record split before it) and
// returns the complete badge reads and, for each read dropped as garbage,
// why it was dropped. A garbage read is dropped as a whole: the keys typed
// after the fault, up to Enter, belong to it.
func (d *keyDecoder) feed(p []byte) (reads, dropped []string) {
	size := d.layout.size
	if len(d.partial) > 0 {
		k := min(size-len(d.partial), len(p))
		d.partial = append(d.partial, p[:k]...)
		p = p[k:]
		if len(d.partial) < size {
			return nil, nil
		}
		reads, dropped = d.event(d.partial, reads, dropped)
		d.partial = d.partial[:0]
	}
	for len(p) >= size {
		reads, dropped = d.event(p[:size], reads, dropped)
		p = p[size:]
	}
	d.partial = append(d.partial, p...)
	return reads, dropped
}

// event decodes one record.
func (d *keyDecoder) event(rec []byte, reads, dropped []string) ([]string, []string) {
	base := d.layout.size - 8
	typ := d.layout.order.Uint16(rec[base:])
	code := d.layout.order.Uint16(rec[base+2:])
	value := int32(d.layout.order.Uint32(rec[base+4:]))
	switch {
	case typ == evSyn && code == synDropped:
		// The lost events may be the start of a read as well as its
		// middle: whatever is typed up to the next Enter is suspect.
		return reads, d.drop("the kernel dropped input events", dropped)
	case typ != evKey || value != 1: // only key presses: not releases (0), repeats (2), scan codes or sync
		return reads, dropped
	}
	if code == keyEnter || code == keyKPEnter {
		return d.enter(reads, dropped)
	}
	if ignoredKeys[code] {
		return reads, dropped
	}
	if d.garbage != "" {
		return reads, dropped
	}
	c, ok := keyChars[code]
	switch {
	case !ok:
		dropped = d.markGarbage(fmt.Sprintf("key code %d is not a hexadecimal digit", code), dropped)
	case d.decimal != "" && c > '9':
		dropped = d.markGarbage(fmt.Sprintf("%c in a decimal UID", c), dropped)
	case len(d.typed) == maxTyped:
		dropped = d.markGarbage(fmt.Sprintf("longer than %d characters", maxTyped), dropped)
	default:
		d.typed = append(d.typed, c)
	}
	return reads, dropped
}

// enter ends the read in progress.
func (d *keyDecoder) enter(reads, dropped []string) ([]string, []string) {
	typed := string(d.typed)
	wasGarbage := d.garbage != ""
	d.typed, d.garbage = d.typed[:0], ""
	if wasGarbage || typed == "" {
		return reads, dropped
	}
	if d.decimal != "" {
		uid, err := DecimalUID(typed, d.decimal)
		if err != nil {
			return reads, append(dropped, err.Error())
		}
		typed = uid
	}
	return append(reads, typed), dropped
}

// markGarbage drops the read in progress; what is typed up to Enter is
// ignored.
func (d *keyDecoder) markGarbage(reason string, dropped []string) []string {
	d.typed, d.garbage = d.typed[:0], reason
	return append(dropped, reason)
}

// drop drops the read in progress after lost events: the keys that follow
// may be its tail, so they are ignored up to Enter too.
func (d *keyDecoder) drop(reason string, dropped []string) []string {
	if d.garbage != "" {
		return dropped // already counted
	}
	return d.markGarbage(reason, dropped)
}
