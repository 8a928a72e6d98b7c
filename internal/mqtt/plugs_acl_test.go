package mqtt

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
)

// docBlock returns the lines of the fenced code block of doc that starts
// with first.
func docBlock(t *testing.T, doc, first string) string {
	t.Helper()
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "```\n"+first)
	if !ok {
		t.Fatalf("%s has no code block starting with %q", doc, first)
	}
	block, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatalf("%s: the block %q does not end", doc, first)
	}
	return first + block
}

// The plugs' ACL that docs/hardware.md tells operators to use, run on a
// real Mosquitto: a plug cannot switch another plug.
func TestPlugsACLExample(t *testing.T) {
	mqtttest.RequireMosquitto(t)
	acl := docBlock(t, "../../docs/hardware.md", "# /etc/mosquitto/plugs.acl")
	dir := t.TempDir()
	users := []string{"bridge", "laser-plug", "printer-plug", "saw-plug", "shelly1pm-84CCA8A1B2C3"}
	var passwd bytes.Buffer
	for _, u := range users {
		h, err := MosquittoPasswordHash("pw-" + u)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&passwd, "%s:%s\n", u, h)
	}
	addr := mqtttest.FreeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous false\nuse_username_as_clientid true\npassword_file %s\nacl_file %s\npersistence false\n",
		port, filepath.Join(dir, "passwd"), filepath.Join(dir, "acl"))
	for name, text := range map[string]string{"passwd": passwd.String(), "acl": acl, MosquittoConfFile: conf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr = mqtttest.StartMosquitto(t, dir)
	log, _ := testLog(t)
	as := func(u string) *Client {
		return dial(t, addr, u, "pw-"+u, withLog(log), func(c *ClientConfig) { c.ClientID = u })
	}

	bridge := as("bridge")
	seen := newInbox()
	for _, f := range []string{"cmnd/#", "shellies/#", "plugs/#", "stat/#", "+/rpc"} {
		subscribe(t, bridge, f, seen)
	}
	laser, printer, saw, gen1 := as("laser-plug"), as("printer-plug"), as("saw-plug"), as("shelly1pm-84CCA8A1B2C3")
	laserCmds := newInbox()
	subscribe(t, laser, "cmnd/laser-plug/#", laserCmds)

	// Forgeries: each plug tries another plug's command topic.
	publish(t, printer, "cmnd/laser-plug/POWER", "forged-tasmota", 1, false)
	publish(t, gen1, "shellies/shelly1pm-OTHER/relay/0/command", "forged-gen1", 1, false)
	publish(t, saw, "plugs/laser-plug/rpc", "forged-gen2", 1, false)
	publish(t, laser, "stat/printer-plug/RESULT", "forged-state", 1, false)

	// What each may do.
	publish(t, bridge, "cmnd/laser-plug/POWER", "ON", 1, false)
	laserCmds.waitFor(t, "cmnd/laser-plug/POWER", "ON")
	publish(t, laser, "stat/laser-plug/RESULT", "own-state", 1, false)
	publish(t, gen1, "shellies/shelly1pm-84CCA8A1B2C3/relay/0", "on", 1, false)
	publish(t, saw, "plugs/saw-plug/events/rpc", "own-event", 1, false)
	publish(t, saw, "shelly2-plugs_saw-plug-0a1b2c/rpc", "reply", 1, false)
	for topic, payload := range map[string]string{
		"stat/laser-plug/RESULT": "own-state", "shellies/shelly1pm-84CCA8A1B2C3/relay/0": "on",
		"plugs/saw-plug/events/rpc": "own-event", "shelly2-plugs_saw-plug-0a1b2c/rpc": "reply",
	} {
		seen.waitFor(t, topic, payload)
	}
	seen.none(t, "a forged message", func(m received) bool { return strings.HasPrefix(m.payload, "forged") })
	laserCmds.none(t, "a forged command", func(m received) bool { return strings.HasPrefix(m.payload, "forged") })
}
