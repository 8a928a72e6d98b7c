package wire

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// designExamples are the payload examples of DESIGN §4, copied verbatim
// (markdown escapes included). expandExample fills their placeholders.
var designExamples = []struct {
	kind    Kind
	example string
}{
	{KindStatus, `{"v":1,"online":true,"fw":"1.2.0","boot_id":"…","ts":…}`},
	{KindStatus, `{"v":1,"online":false}`},
	{KindHeartbeat, `{"v":1,"ts":…,"uptime_s":…,"relay":"on","power_w":812.5,"session_id":"…","allow_ver":42}`},
	{KindTap, `{"v":1,"msg_id":"…","ts":…,"uid":"04A2B3C4D5E6F7","offline":false}`},
	{KindCmd, `{"v":1,"cmd_id":"…","seq":1207,"op":"unlock\|lock\|warn\|deny\|status","session_id":"…","until":…,"reason":"…","message":"…"}`},
	{KindAck, `{"v":1,"cmd_id":"…","seq":1207,"result":"ok\|stale\|error","relay":"on\|off","reason":"…"}`},
	{KindState, `{"v":1,"relay":"on\|off","session_id":"…","since":…,"power_w":…,"seq":…}`},
	{KindAllowlist, `{"v":1,"ver":42,"issued":…,"entries":[{"h":"<hmac hex>","tier":"offline\|admin","until":…}]}`},
	{"server-status", `{"v":1,"online":true\|false}`},
}

var alternatives = regexp.MustCompile(`[a-z]+(?:\\\|[a-z]+)+`)

// expandExample turns a DESIGN example into concrete payloads: every
// alternative "a\|b" gives one payload per choice, "…" in a string becomes an
// id, a bare … a Unix time, and <hmac hex> a hash.
func expandExample(s string) []string {
	s = strings.ReplaceAll(s, `"…"`, `"ex-1"`)
	s = strings.ReplaceAll(s, `…`, `1767225600`)
	s = strings.ReplaceAll(s, `<hmac hex>`, hexHash('9'))
	loc := alternatives.FindStringIndex(s)
	if loc == nil {
		return []string{s}
	}
	var out []string
	for _, alt := range strings.Split(s[loc[0]:loc[1]], `\|`) {
		out = append(out, expandExample(s[:loc[0]]+alt+s[loc[1]:])...)
	}
	return out
}

// decodeKind decodes b as a payload of kind k ("server-status" for the
// server's status).
func decodeKind(k Kind, b []byte) (any, error) {
	switch k {
	case KindStatus:
		return DecodeStatus(b)
	case KindHeartbeat:
		return DecodeHeartbeat(b)
	case KindTap:
		return DecodeTap(b)
	case KindCmd:
		return DecodeCommand(b)
	case KindAck:
		return DecodeAck(b)
	case KindState:
		return DecodeState(b)
	case KindAllowlist:
		return DecodeAllowlist(b)
	case "server-status":
		return DecodeServerStatus(b)
	}
	panic("unknown kind " + k)
}

func TestDesignExamples(t *testing.T) {
	n := 0
	for _, ex := range designExamples {
		for _, payload := range expandExample(ex.example) {
			n++
			t.Run(string(ex.kind)+"/"+payload, func(t *testing.T) {
				v, err := decodeKind(ex.kind, []byte(payload))
				if err != nil {
					t.Fatalf("DESIGN §4 example does not decode: %v", err)
				}
				b, err := Encode(v)
				if err != nil {
					t.Fatalf("re-encode: %v", err)
				}
				// The examples list the fields in the contract's order,
				// as Encode writes them.
				if string(b) != payload {
					t.Fatalf("re-encoded\n  %s\nexample\n  %s", b, payload)
				}
			})
		}
	}
	// 2 status + hb + tap + 5 ops + 3×2 acks + 2 states + 2 tiers + 2 server = 21
	if n != 21 {
		t.Fatalf("expanded %d examples, want 21", n)
	}
}

// docExample matches an example of docs/protocol.md: a marker comment
// naming the decoder, then a json code block.
var docExample = regexp.MustCompile("<!-- wire:([a-z-]+) -->\\s*```json\\n((?s:.*?))```")

// TestProtocolDocExamples keeps docs/protocol.md honest: every example it
// marks as a payload decodes, and is exactly what Encode writes back.
func TestProtocolDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	matches := docExample.FindAllSubmatch(doc, -1)
	seen := map[Kind]bool{}
	for i, m := range matches {
		kind, payload := Kind(m[1]), strings.TrimSpace(string(m[2]))
		seen[kind] = true
		t.Run(string(kind)+"/"+string(rune('a'+i)), func(t *testing.T) {
			v, err := decodeKind(kind, []byte(payload))
			if err != nil {
				t.Fatalf("example %s does not decode: %v", payload, err)
			}
			b, err := Encode(v)
			if err != nil || string(b) != payload {
				t.Fatalf("example\n  %s\nre-encodes as\n  %s (%v)", payload, b, err)
			}
		})
	}
	for _, k := range append(Kinds(), "server-status") {
		if !seen[k] {
			t.Errorf("docs/protocol.md has no marked example of %s", k)
		}
	}
}
