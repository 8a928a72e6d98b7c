package wire_test

import (
	"fmt"

	"github.com/fabgate/fabgate/internal/wire"
)

func Example() {
	topics := wire.Topics{} // the default prefix, fabgate/v1

	// Device side: a badge was read.
	payload, err := wire.Encode(wire.Tap{MsgID: "laser-1-000123", TS: 1767258042, UID: "04:a2:b3:c4:d5:e6:f7"})
	if err != nil {
		panic(err)
	}
	fmt.Println(topics.Device("laser-1", wire.KindTap), string(payload))

	// Server side: route by topic, then decode.
	dev, kind, ok := topics.Parse("fabgate/v1/dev/laser-1/tap")
	tap, err := wire.DecodeTap(payload)
	fmt.Println(dev, kind, ok, tap.UID, err)

	_, err = wire.DecodeTap([]byte(`{"v":2,"msg_id":"x","ts":1,"uid":"0102"}`))
	fmt.Println(err)
	// Output:
	// fabgate/v1/dev/laser-1/tap {"v":1,"msg_id":"laser-1-000123","ts":1767258042,"uid":"04A2B3C4D5E6F7","offline":false}
	// laser-1 tap true 04A2B3C4D5E6F7 <nil>
	// invalid_request: tap: unsupported protocol version v=2: this side speaks version 1
}
