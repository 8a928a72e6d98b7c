//go:build linux

package reader

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The native layout is derived from unix.Timeval: check it against the
// kernel's struct input_event, whose timestamp is two C longs.
func TestEvdevNativeLayout(t *testing.T) {
	want := map[int]int{64: 24, 32: 16}[strconv.IntSize]
	if nativeEventLayout.size != want {
		t.Errorf("struct input_event is %d bytes here, want %d with %d-bit longs", nativeEventLayout.size, want, strconv.IntSize)
	}
}

// These tests open paths that are not input devices: the test machines
// have no /dev/uinput, so no virtual input device can be made to open and
// grab for real. Reading is tested on a pipe (TestEvdevReadEventsPipe).
func TestEvdevOpenErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "event0")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want []string // all in the error
	}{
		{"missing", filepath.Join(dir, "event9"), []string{filepath.Join(dir, "event9"), "does not exist", "plugged in", "/dev/input/by-id/"}},
		{"regular file: the grab fails", regular, []string{regular, "not an input event device", "grab"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEvdev(EvdevConfig{Path: tc.path})
			if err != nil {
				t.Fatal(err)
			}
			err = e.Run(context.Background(), make(chan string))
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
}

// The messages for failures a test cannot cause (the tests run as root,
// who may open anything, and nothing else holds a grab here) are checked
// on the errors the system calls return.
func TestEvdevErrorMessages(t *testing.T) {
	const path = "/dev/input/event3"
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"permission", evdevOpenError(path, &fs.PathError{Op: "open", Path: path, Err: syscall.EACCES}), []string{path, "input group", "udev rule"}},
		{"missing", evdevOpenError(path, &fs.PathError{Op: "open", Path: path, Err: syscall.ENOENT}), []string{path, "plugged in"}},
		{"grabbed elsewhere", evdevGrabError(path, syscall.EBUSY), []string{path, "another program"}},
		{"not evdev", evdevGrabError(path, syscall.ENOTTY), []string{path, "not an input event device"}},
	}
	for _, tc := range tests {
		for _, w := range tc.want {
			if !strings.Contains(tc.err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, tc.err, w)
			}
		}
		var errno syscall.Errno
		if !errors.As(tc.err, &errno) {
			t.Errorf("%s: error %q does not wrap the system's", tc.name, tc.err)
		}
	}
}
