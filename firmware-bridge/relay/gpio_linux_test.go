//go:build linux

package relay

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The test machines have no /dev/gpiochip*: these tests check that a chip
// that is missing, or a path that is no GPIO chip, fails with an error
// that names it and says what to check.
func TestGPIOOpenErrors(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "gpiochip0")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		chip string
		want []string // all in the error
	}{
		{"missing chip", "gpiochip9", []string{"gpiochip9", "/dev/gpiochip9", "does not exist", "gpiodetect"}},
		{"missing path", "/dev/gpiochip7", []string{"/dev/gpiochip7", "does not exist", "gpiodetect"}},
		{"regular file", regular, []string{regular, "not a GPIO character device"}},
		{"another character device", "/dev/null", []string{"/dev/null", "the GPIO scan found no chip", "gpiodetect"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, relayErr := OpenGPIO(GPIOConfig{Chip: tc.chip, Line: "17"})
			_, indErr := OpenIndicator(IndicatorConfig{Chip: tc.chip, Line: "GPIO27"})
			for _, err := range []error{relayErr, indErr} {
				if err == nil {
					t.Fatal("opened")
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
			}
		})
	}
}

// A chip the bridge may not open cannot be made here (the tests run as
// root): the message is checked on the error the system returns.
func TestGPIOPermissionMessage(t *testing.T) {
	err := gpioChipError("gpiochip0", "/dev/gpiochip0", &fs.PathError{Op: "open", Path: "/dev/gpiochip0", Err: syscall.EACCES})
	for _, w := range []string{"gpiochip0", "/dev/gpiochip0", "gpio group", "udev rule"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("error %q does not wrap the system's", err)
	}
}
