// Package reader reads badges: USB keyboard-wedge readers through evdev,
// serial line readers, standard input, and a simulated reader for the demo
// and tests. A reader reports what it read as text; the bridge normalises
// the UID (fablab.NormalizeUID), drops what is not a UID, and ignores the
// same badge read again within 2 s.
package reader

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
)

// Reader reports badge reads.
type Reader interface {
	// Run sends each badge read to reads until ctx ends (it then returns
	// ctx.Err()) or the input fails (a device unplugged, a port closed);
	// the bridge then opens it again after a pause. Run never closes reads.
	Run(ctx context.Context, reads chan<- string) error
}

// Lines reads one badge per line from r (standard input, or a serial
// port's line stream); blank lines are skipped and surrounding space is
// trimmed. Run returns io.ErrUnexpectedEOF when r ends.
type Lines struct {
	R io.Reader
}

// Run implements Reader.
func (l Lines) Run(ctx context.Context, reads chan<- string) error {
	lines := make(chan string)
	errc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(l.R)
		sc.Buffer(make([]byte, 256), 4096) // a badge line is short; a longer one is garbage
		for sc.Scan() {
			if s := strings.TrimSpace(sc.Text()); s != "" {
				select {
				case lines <- s:
				case <-ctx.Done():
					return
				}
			}
		}
		err := sc.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		errc <- err
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case s := <-lines:
			select {
			case reads <- s:
			case <-ctx.Done():
				return ctx.Err()
			}
		case err := <-errc:
			return err
		}
	}
}

// Sim is a simulated reader: Tap hands it a badge as if it had been read.
type Sim struct {
	taps chan string
}

// NewSim returns a simulated reader.
func NewSim() *Sim { return &Sim{taps: make(chan string, 16)} }

// ErrBusy is returned by Sim.Tap when reads are not being taken.
var ErrBusy = errors.New("reader: the simulated reader is not being read")

// Tap reads badge uid on the simulated reader. It does not wait for the
// bridge to take it beyond a short queue; ErrBusy when the queue is full.
func (s *Sim) Tap(uid string) error {
	select {
	case s.taps <- uid:
		return nil
	default:
		return ErrBusy
	}
}

// Run implements Reader.
func (s *Sim) Run(ctx context.Context, reads chan<- string) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case uid := <-s.taps:
			select {
			case reads <- uid:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}
