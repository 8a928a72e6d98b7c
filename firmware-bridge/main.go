// Command fabgate-bridge is FabGate's device program: it connects badge
// readers and machine relays to the server over MQTT. The readers, relays and
// offline mode are not built yet; this binary only reports its version.
package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("fabgate-bridge", version)
		return
	}
	fmt.Fprintln(os.Stderr, "fabgate-bridge: the device program is not available in this version; see docs/protocol.md once it is")
	os.Exit(2)
}
