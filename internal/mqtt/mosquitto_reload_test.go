package mqtt

import (
	"net"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
)

// Mosquitto with the configuration WriteMosquittoConfig writes: a device's
// client id is its username, and rewriting the files then reloading the
// broker cuts a device whose secret was rotated or that was disabled.
func TestMosquittoClientIDAndReload(t *testing.T) {
	mqtttest.RequireMosquitto(t)
	devs := hashedDevices(t)
	dir := t.TempDir()
	listen := mqtttest.FreeAddr(t)
	server := MosquittoUser{Username: testServerUser, Password: testServerPass}
	if err := WriteMosquittoConfig(dir, testPrefix, listen, server, map[string]string{devA: devs[devA], devB: devs[devB]}); err != nil {
		t.Fatal(err)
	}
	addr, reload := mqtttest.StartMosquittoReloadable(t, dir)
	conns := map[string][]net.Conn{} // by username, in login order
	login := func(clientID, user, pass string) byte {
		c := rawDial(t, addr, "")
		if _, err := c.Write(connectBytes(clientID, user, pass)); err != nil {
			t.Fatal(err)
		}
		code := readConnack(t, c)
		conns[user] = append(conns[user], c)
		return code
	}

	// dev-b asking for dev-a's client id gets its own: dev-a is not cut.
	if code := login(devA, devA, secretA); code != 0 {
		t.Fatalf("dev-a: CONNACK %d", code)
	}
	if code := login(devA, devB, secretB); code != 0 {
		t.Fatalf("dev-b: CONNACK %d", code)
	}
	stillOpen(t, conns[devA][0], 300*time.Millisecond, "dev-a after dev-b asked for its client id")
	// A second login of dev-a, whatever client id it asks for, replaces
	// the first: one connection per device.
	if code := login("dev-a-second", devA, secretA); code != 0 {
		t.Fatalf("dev-a again: CONNACK %d", code)
	}
	waitClosed(t, conns[devA][0], "dev-a's first connection after its second login")
	stillOpen(t, conns[devA][1], 100*time.Millisecond, "dev-a's second connection")

	// dev-a's secret is rotated and dev-b disabled (left out): the files
	// are written again and Mosquitto reloaded.
	rotated, err := MosquittoPasswordHash("rotated-secret")
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteMosquittoConfig(dir, testPrefix, listen, server, map[string]string{devA: rotated}); err != nil {
		t.Fatal(err)
	}
	reload()
	waitClosed(t, conns[devA][1], "dev-a with its old secret, after the reload")
	waitClosed(t, conns[devB][0], "dev-b, disabled, after the reload")
	if code := login(devA, devA, secretA); code == 0 {
		t.Error("the old secret logged in after the reload")
	}
	if code := login(devB, devB, secretB); code == 0 {
		t.Error("the disabled device logged in after the reload")
	}
	if code := login(devA, devA, "rotated-secret"); code != 0 {
		t.Errorf("the new secret: CONNACK %d", code)
	}
}
