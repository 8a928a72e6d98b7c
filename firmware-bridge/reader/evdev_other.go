//go:build !linux

package reader

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
)

// nativeEventLayout is the 64-bit Linux struct input_event; there is no
// evdev here, it only lets the decoder build.
var nativeEventLayout = eventLayout{size: 24, order: binary.LittleEndian}

// openEvdev fails: keyboard-wedge readers are read through Linux's input
// event devices, which this system does not have.
func openEvdev(path string) (*os.File, error) {
	return nil, fmt.Errorf("reader: evdev %s: keyboard-wedge readers need Linux input event devices, not available on %s: use a serial reader or run the bridge on Linux", path, runtime.GOOS)
}
