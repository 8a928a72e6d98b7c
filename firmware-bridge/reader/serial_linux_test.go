//go:build linux

package reader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair and returns its master side and
// the path of its slave, which go.bug.st/serial opens as it opens a real
// port (the same termios calls, the same reads).
func openPTY(t *testing.T) (master *os.File, slave string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		if ioctlErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioctlErr != nil { // unlockpt
			return
		}
		n, ioctlErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN) // ptsname
	}); err != nil {
		t.Fatal(err)
	}
	if ioctlErr != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", ioctlErr)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// startSerial runs a serial reader on port and waits until it has opened
// and configured the port: what the master writes before then would go
// through the terminal's line discipline, not a raw port.
func startSerial(t *testing.T, ctx context.Context, cfg SerialConfig) (*Serial, <-chan string, <-chan error) {
	t.Helper()
	s, err := NewSerial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	s.opened = func() { close(opened) }
	reads := make(chan string)
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, reads) }()
	select {
	case <-opened:
	case err := <-errc:
		t.Fatalf("Run returned before opening the port: %v", err)
	case <-time.After(testWait):
		t.Fatal("the port was not opened")
	}
	return s, reads, errc
}

func TestSerialPTY(t *testing.T) {
	master, slave := openPTY(t)
	s, reads, errc := startSerial(t, context.Background(), SerialConfig{Port: slave, Baud: 115200})

	if _, err := master.Write([]byte("04A2B3C4\r\nnoise\x00\x07\r\n" + strings.Repeat("9", 200) + "\n  0a1b \r")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"04A2B3C4", "0a1b"} {
		if got := recvRead(t, reads); got != want {
			t.Errorf("read %q, want %q", got, want)
		}
	}
	if g := s.Garbage(); g != 2 {
		t.Errorf("Garbage() = %d, want 2 (the noise and the long line)", g)
	}
	if _, err := master.Write([]byte("DEAD")); err != nil { // a line cut in two writes
		t.Fatal(err)
	}
	if _, err := master.Write([]byte("BEEF\n")); err != nil {
		t.Fatal(err)
	}
	if got := recvRead(t, reads); got != "DEADBEEF" {
		t.Errorf("read %q, want DEADBEEF", got)
	}

	// Closing the master hangs the terminal up, as unplugging a USB
	// reader takes its port away.
	master.Close()
	err := recvErr(t, errc)
	if err == nil || errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), slave) {
		t.Errorf("Run returned %v, want the port's failure naming %s", err, slave)
	}
}

func TestSerialPTYTerminator(t *testing.T) {
	master, slave := openPTY(t)
	_, reads, _ := startSerial(t, t.Context(), SerialConfig{Port: slave, Terminator: "\x03"})
	if _, err := master.Write([]byte("\x0204A2B3C4\x03\r\n\x020A1B\x03")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"04A2B3C4", "0A1B"} {
		if got := recvRead(t, reads); got != want {
			t.Errorf("read %q, want %q", got, want)
		}
	}
}

func TestSerialPTYCancel(t *testing.T) {
	_, slave := openPTY(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, _, errc := startSerial(t, ctx, SerialConfig{Port: slave})
	cancel()
	if err := recvErr(t, errc); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	// The bridge runs the reader again after a failure: the port opens
	// again.
	startSerial(t, t.Context(), SerialConfig{Port: slave})
}
