//go:build !linux

package relay

import (
	"fmt"
	"runtime"
)

// openGPIOLine fails: GPIO outputs are driven through Linux's GPIO
// character device, which this system does not have.
func openGPIOLine(chipName, lineRef string) (gpioLine, error) {
	return nil, fmt.Errorf("relay: GPIO chip %s line %s: GPIO outputs need the Linux GPIO character device, not available on %s: use a networked relay or run the bridge on Linux", chipName, lineRef, runtime.GOOS)
}
