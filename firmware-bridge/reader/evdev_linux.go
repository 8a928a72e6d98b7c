//go:build linux

package reader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nativeEventLayout is struct input_event on this machine: a struct
// timeval, then u16 type, u16 code and s32 value, in the machine's byte
// order. unix.Timeval is two longs, so the size follows the architecture
// the bridge was built for (24 bytes on arm64 and amd64, 16 on arm).
var nativeEventLayout = eventLayout{
	size:  int(unsafe.Sizeof(unix.Timeval{})) + 8,
	order: binary.NativeEndian,
}

// evIOCGRAB is EVIOCGRAB, _IOW('E', 0x90, int): with a non-zero argument
// the caller becomes the only reader of the device's events.
const evIOCGRAB = 0x40044590

// openEvdev opens an input event device and grabs it, so the typed UIDs
// reach the bridge only and never a console or login prompt. The file is
// pollable, so closing it interrupts a pending read.
func openEvdev(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, evdevOpenError(path, err)
	}
	// SyscallConn, not Fd: Fd would put the file in blocking mode, and
	// Close could then no longer interrupt a read.
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reader: evdev %s: %w", path, err)
	}
	var grabErr error
	if err := rc.Control(func(fd uintptr) {
		grabErr = unix.IoctlSetInt(int(fd), evIOCGRAB, 1)
	}); err != nil {
		grabErr = err
	}
	if grabErr != nil {
		f.Close()
		return nil, evdevGrabError(path, grabErr)
	}
	return f, nil
}

// evdevOpenError explains why the device did not open.
func evdevOpenError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("reader: evdev %s does not exist: check that the reader is plugged in and the path (ls -l /dev/input/by-id/): %w", path, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("reader: no permission to read evdev %s: add the bridge's user to the input group, or give it the device with a udev rule: %w", path, err)
	default:
		return fmt.Errorf("reader: open evdev %s: %w", path, err)
	}
}

// evdevGrabError explains why the exclusive grab failed.
func evdevGrabError(path string, err error) error {
	switch {
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("reader: evdev %s is grabbed by another program (another fabgate-bridge?): %w", path, err)
	case errors.Is(err, syscall.ENOTTY), errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("reader: %s is not an input event device (the exclusive grab failed): point path at the reader's /dev/input/by-id/…-event-kbd link: %w", path, err)
	default:
		return fmt.Errorf("reader: grab evdev %s (EVIOCGRAB): %w", path, err)
	}
}
