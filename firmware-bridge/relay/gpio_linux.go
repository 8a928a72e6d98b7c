//go:build linux

package relay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"
)

// openGPIOLine requests a line of a GPIO chip as an output.
//
// The request drives the line low: gpioioctl cannot pass the kernel an
// initial output value, so an active-low output is on from the request
// until the caller's first write, a few microseconds later. A mechanical
// relay cannot follow so short a pulse; a solid-state relay may. Wire
// solid-state relays active-high.
func openGPIOLine(chipName, lineRef string) (gpioLine, error) {
	path := chipName
	if !strings.Contains(path, "/") {
		path = "/dev/" + chipName
	}
	// Check the device first: gpioioctl's scan skips the chips it cannot
	// open, which would turn a permission problem into "not found", and it
	// scans once per process, so it must not run before the chip exists.
	st, err := os.Stat(path)
	if err != nil {
		return nil, gpioChipError(chipName, path, err)
	}
	if st.Mode()&fs.ModeCharDevice == 0 {
		return nil, fmt.Errorf("relay: GPIO chip %s: %s is not a GPIO character device: set chip to a name from gpiodetect, such as gpiochip0", chipName, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, gpioChipError(chipName, path, err)
	}
	f.Close()
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("relay: GPIO chip %s: scanning the GPIO chips: %w", chipName, err)
	}
	// The kernel names a chip after its device node; a symlink such as the
	// Pi 5's /dev/gpiochip4 resolves to the chip it stands for.
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("relay: GPIO chip %s: %w", chipName, err)
	}
	var chip *gpioioctl.GPIOChip
	for _, c := range gpioioctl.Chips {
		if c.Name() == filepath.Base(resolved) {
			chip = c
		}
	}
	if chip == nil {
		return nil, fmt.Errorf("relay: GPIO chip %s: the GPIO scan found no chip at %s: check gpiodetect, and restart the bridge if the chip appeared after it started", chipName, path)
	}
	var line *gpioioctl.GPIOLine
	if n, err := strconv.Atoi(lineRef); err == nil {
		if n >= chip.LineCount() {
			return nil, fmt.Errorf("relay: GPIO chip %s has lines 0 to %d, not %d: check the line with gpioinfo %s", chipName, chip.LineCount()-1, n, chip.Name())
		}
		line = chip.ByNumber(n)
	} else if line = chip.ByName(lineRef); line == nil {
		return nil, fmt.Errorf("relay: GPIO chip %s has no line named %q: check the name with gpioinfo %s, or give the line's offset", chipName, lineRef, chip.Name())
	}
	// gpioioctl requests the lines of a set by name, and reading back an
	// output works on a set only (a single line's Read turns it into an
	// input), so the line needs a name of its own.
	name := line.Name()
	if name == "" || chip.ByName(name) != line {
		return nil, fmt.Errorf("relay: GPIO chip %s line %s has no name of its own (%q), which FabGate needs to request it: choose a named line (gpioinfo %s)", chipName, lineRef, name, chip.Name())
	}
	set, err := chip.LineSetFromConfig(&gpioioctl.LineSetConfig{
		Lines:            []string{name},
		DefaultDirection: gpioioctl.LineOutput,
		DefaultEdge:      gpio.NoEdge,
		DefaultPull:      gpio.PullNoChange,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: request GPIO chip %s line %s (%s): check that no other program or kernel driver holds it (gpioinfo %s shows its consumer): %w", chipName, lineRef, name, chip.Name(), err)
	}
	return gpioLineSet{set}, nil
}

// gpioChipError explains why the chip's device could not be opened.
func gpioChipError(chipName, path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("relay: GPIO chip %s: %s does not exist: check the chip's name with gpiodetect (or ls /dev/gpiochip*): %w", chipName, path, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("relay: GPIO chip %s: no permission to open %s: add the bridge's user to the gpio group (or give it the chip with a udev rule): %w", chipName, path, err)
	default:
		return fmt.Errorf("relay: GPIO chip %s: open %s: %w", chipName, path, err)
	}
}

// gpioLineSet is a one-line gpioioctl.LineSet.
type gpioLineSet struct{ ls *gpioioctl.LineSet }

func (l gpioLineSet) set(high bool) error {
	var bits gpio.GPIOValue
	if high {
		bits = 1
	}
	return l.ls.Out(bits, 1)
}

func (l gpioLineSet) get() (bool, error) {
	v, err := l.ls.Read(1)
	return v&1 == 1, err
}

func (l gpioLineSet) close() error { return l.ls.Close() }
