package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

// seedDecoder adds the golden examples, the table cases and a few tricky
// payloads to a fuzz corpus.
func seedDecoder[T any](f *testing.F, kind Kind, cases []dcase[T]) {
	for _, ex := range designExamples {
		if ex.kind == kind {
			for _, p := range expandExample(ex.example) {
				f.Add([]byte(p))
			}
		}
	}
	for _, c := range cases {
		if len(c.in) <= 8192 {
			f.Add([]byte(c.in))
		}
	}
	for _, s := range []string{"", "{}", "null", `{"v":1}`, `{"v":1,"v":2}`, `{"V":1}`, `{"v":1}` + "\x00", "{\"v\":1,\"x\":\"\\ud800\"}"} {
		f.Add([]byte(s))
	}
}

// checkDecoded is the property every decoder must have: it never panics; it
// fails only with EINVALID; what it accepts has "v":1, re-encodes, decodes
// to an equal value, and the encoding is a fixed point.
func checkDecoded[T any](t *testing.T, in []byte, decode func([]byte) (T, error)) {
	v, err := decode(in)
	if err != nil {
		var fe *fablab.Error
		if !errors.As(err, &fe) || fe.Code != fablab.EINVALID || fe.Message == "" {
			t.Fatalf("error %v (%T) is not an EINVALID *fablab.Error", err, err)
		}
		return
	}
	if reflect.ValueOf(v).FieldByName("V").Int() != Version {
		t.Fatalf("decoded %+v without V=1", v)
	}
	b, err := Encode(v)
	if err != nil {
		t.Fatalf("accepted %q as %+v, but Encode refuses it: %v", in, v, err)
	}
	w, err := decode(b)
	if err != nil {
		t.Fatalf("Encode wrote %s, which does not decode: %v", b, err)
	}
	if !reflect.DeepEqual(v, w) {
		t.Fatalf("round trip changed the value:\n  in  %q\n  got %+v\n  via %s\n  got %+v", in, v, b, w)
	}
	b2, err := Encode(w)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("encoding is not stable: %s then %s (%v)", b, b2, err)
	}
}

func FuzzDecodeStatus(f *testing.F) {
	seedDecoder(f, KindStatus, envelopeCases[Status](`"online":true`, MaxPayload))
	f.Add([]byte(`{"v":1,"online":true,"fw":"1.2.0","boot_id":"b-1","ts":1767225600}`))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecoded(t, in, DecodeStatus) })
}

func FuzzDecodeHeartbeat(f *testing.F) {
	seedDecoder(f, KindHeartbeat, envelopeCases[Heartbeat](`"ts":1`, MaxPayload))
	f.Add([]byte(`{"v":1,"ts":1,"uptime_s":5,"power_w":-0}`))
	f.Add([]byte(`{"v":1,"ts":1,"uptime_s":5,"power_w":4.9e-324}`))
	f.Add([]byte(`{"v":1,"ts":1,"uptime_s":5,"power_w":1.7976931348623157e308}`))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecoded(t, in, DecodeHeartbeat) })
}

func FuzzDecodeTap(f *testing.F) {
	seedDecoder(f, KindTap, envelopeCases[Tap](`"msg_id":"m","ts":1,"uid":"0102"`, MaxPayload))
	f.Add([]byte(`{"v":1,"msg_id":"m-1","ts":1,"uid":"04:a2 b3-c4"}`))
	f.Add([]byte(`{"v":1,"msg_id":"m-1","ts":1,"uid":"04a2","UID":"0506"}`))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecoded(t, in, DecodeTap) })
}

func FuzzDecodeCommand(f *testing.F) {
	seedDecoder(f, KindCmd, envelopeCases[Command](`"cmd_id":"c","seq":1,"op":"lock"`, MaxPayload))
	f.Add([]byte(`{"v":1,"cmd_id":"c","seq":1,"op":"deny","reason":"in_use","message":"<b>é\u2028</b>"}`))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecoded(t, in, DecodeCommand) })
}

func FuzzDecodeAck(f *testing.F) {
	seedDecoder(f, KindAck, envelopeCases[Ack](`"cmd_id":"c","seq":1,"result":"ok"`, MaxPayload))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecoded(t, in, DecodeAck) })
}

func FuzzDecodeState(f *testing.F) {
	seedDecoder(f, KindState, envelopeCases[State](`"relay":"on"`, MaxPayload))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecoded(t, in, DecodeState) })
}

func FuzzDecodeAllowlist(f *testing.F) {
	seedDecoder(f, KindAllowlist, []dcase[Allowlist]{
		{in: `{"v":1,"ver":1,"issued":1,"entries":[]}`},
		{in: `{"v":1,"ver":1,"entries":null}`},
		{in: `{"v":1,"ver":1}`},
		{in: allowlistJSON(3, TierOffline, 1767225600)},
		{in: `{"v":1,"ver":1,"entries":[{"h":"` + hexHash('a') + `","tier":"admin","until":0,"x":[1]}]}`},
	})
	f.Fuzz(func(t *testing.T, in []byte) { checkDecoded(t, in, DecodeAllowlist) })
}

func FuzzDecodeServerStatus(f *testing.F) {
	seedDecoder(f, "server-status", envelopeCases[ServerStatus](`"online":false`, MaxPayload))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecoded(t, in, DecodeServerStatus) })
}

func FuzzTopicsParse(f *testing.F) {
	for _, s := range []string{
		"fabgate/v1/dev/laser-1/tap", "fabgate/v1/dev/a/b/tap", "fabgate/v1/dev/A/hb",
		"fabgate/v1/dev/+/cmd", "fabgate/v1/dev/#", "fabgate/v1/server/status",
		"fabgate/v1/dev/" + strings.Repeat("x", 33) + "/ack", "lab/dev/d/state", "fabgate/v1/dev/d/allowlist/",
	} {
		f.Add("", s)
		f.Add("lab", s)
	}
	f.Fuzz(func(t *testing.T, prefix, topic string) {
		tp, err := NewTopics(prefix)
		if err != nil {
			var fe *fablab.Error
			if !errors.As(err, &fe) || fe.Code != fablab.EINVALID {
				t.Fatalf("NewTopics error %v is not EINVALID", err)
			}
			tp = Topics{}
		}
		dev, kind, ok := tp.Parse(topic)
		if !ok {
			if dev != "" || kind != "" {
				t.Fatalf("Parse(%q) failed but returned %q, %q", topic, dev, kind)
			}
			return
		}
		if !fablab.ValidDeviceID(dev) || !kind.Valid() {
			t.Fatalf("Parse(%q) accepted device %q kind %q", topic, dev, kind)
		}
		if got := tp.Device(dev, kind); got != topic {
			t.Fatalf("Parse(%q) = %q, %q but Device gives %q", topic, dev, kind, got)
		}
		if strings.ContainsAny(topic, "+#") {
			t.Fatalf("Parse accepted a wildcard topic %q", topic)
		}
		if kind.FromDevice() != tp.MayPublish(dev, topic) {
			t.Fatalf("MayPublish(%q, %q) disagrees with FromDevice", dev, topic)
		}
	})
}
