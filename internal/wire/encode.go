package wire

import (
	"bytes"
	"encoding/json"

	"github.com/fabgate/fabgate/internal/fablab"
)

// payload is implemented by pointers to the payload types.
type payload interface {
	// setVersion sets V to Version.
	setVersion()
	// check decodes b as this payload type, so Encode never produces what
	// the other side would reject.
	check(b []byte) error
}

func (p *Status) check(b []byte) error       { _, err := DecodeStatus(b); return err }
func (p *Heartbeat) check(b []byte) error    { _, err := DecodeHeartbeat(b); return err }
func (p *Tap) check(b []byte) error          { _, err := DecodeTap(b); return err }
func (p *Command) check(b []byte) error      { _, err := DecodeCommand(b); return err }
func (p *Ack) check(b []byte) error          { _, err := DecodeAck(b); return err }
func (p *State) check(b []byte) error        { _, err := DecodeState(b); return err }
func (p *ServerStatus) check(b []byte) error { _, err := DecodeServerStatus(b); return err }

// check validates the allowlist itself rather than decoding a megabyte
// back (the server encodes one per device): encoding/json writes a valid
// payload of a valid Allowlist, so the size is what is left to check, by
// the decoder, which rejects an oversized payload unparsed.
func (p *Allowlist) check(b []byte) error {
	if len(b) > MaxAllowlistPayload {
		_, err := DecodeAllowlist(b)
		return err
	}
	c := *p
	return c.validate()
}

// Encode returns the JSON form of a payload (Status, Heartbeat, Tap, Command,
// Ack, State, Allowlist or ServerStatus, or a pointer to one) with "v" set
// to Version; v itself is not modified. A tap's UID is written normalised
// when it is valid, and a nil allowlist Entries as []. HTML characters are
// not escaped (small devices parse the payloads).
//
// Encode fails with EINVALID for any other type and for a payload that its
// decoder would reject (including one over the size limit): the error is the
// decoder's.
func Encode(v any) ([]byte, error) {
	p, err := payloadOf(v)
	if err != nil {
		return nil, err
	}
	p.setVersion()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		// Only NaN and ±Inf floats fail to marshal.
		return nil, fablab.Errorf(fablab.EINVALID, "wire: cannot encode %T: %s", v, err.Error())
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if err := p.check(b); err != nil {
		return nil, err
	}
	return b, nil
}

// payloadOf returns a copy of v's payload, canonicalised.
func payloadOf(v any) (payload, error) {
	switch x := v.(type) {
	case Status:
		return &x, nil
	case Heartbeat:
		return &x, nil
	case Tap:
		return canonicalTap(x), nil
	case Command:
		return &x, nil
	case Ack:
		return &x, nil
	case State:
		return &x, nil
	case Allowlist:
		return canonicalAllowlist(x), nil
	case ServerStatus:
		return &x, nil
	case *Status:
		if x != nil {
			c := *x
			return &c, nil
		}
	case *Heartbeat:
		if x != nil {
			c := *x
			return &c, nil
		}
	case *Tap:
		if x != nil {
			return canonicalTap(*x), nil
		}
	case *Command:
		if x != nil {
			c := *x
			return &c, nil
		}
	case *Ack:
		if x != nil {
			c := *x
			return &c, nil
		}
	case *State:
		if x != nil {
			c := *x
			return &c, nil
		}
	case *Allowlist:
		if x != nil {
			return canonicalAllowlist(*x), nil
		}
	case *ServerStatus:
		if x != nil {
			c := *x
			return &c, nil
		}
	default:
		return nil, fablab.Errorf(fablab.EINVALID, "wire: %T is not a payload of the MQTT contract", v)
	}
	return nil, fablab.Errorf(fablab.EINVALID, "wire: cannot encode a nil %T", v)
}

func canonicalTap(t Tap) *Tap {
	if u, err := fablab.NormalizeUID(t.UID); err == nil {
		t.UID = u
	}
	return &t
}

func canonicalAllowlist(a Allowlist) *Allowlist {
	if a.Entries == nil {
		a.Entries = []AllowEntry{}
	}
	return &a
}
