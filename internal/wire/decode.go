package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Every decoder fails with a *fablab.Error of code EINVALID whose message
// names the payload and says what is wrong. A payload is rejected when it is
// larger than its limit, is not UTF-8, is not exactly one JSON object, has a
// field of the wrong JSON type, lacks "v" or has a "v" other than 1, or breaks
// a field rule (see the payload types and docs/protocol.md). Unknown fields
// are ignored, so devices and newer servers may add fields. A null field is
// the same as an absent one.

// DecodeStatus decodes a device's status (birth or LWT). "online" is required.
func DecodeStatus(b []byte) (Status, error) {
	var p Status
	w := struct {
		V      *int  `json:"v"`
		Online *bool `json:"online"`
		*Status
	}{Status: &p}
	if err := decode("status", b, MaxPayload, &w, &w.V); err != nil {
		return Status{}, err
	}
	if w.Online == nil {
		return Status{}, invalid("status", "online is required (true or false)")
	}
	p.V, p.Online = Version, *w.Online
	if err := p.validate(); err != nil {
		return Status{}, err
	}
	return p, nil
}

// DecodeHeartbeat decodes a device heartbeat.
func DecodeHeartbeat(b []byte) (Heartbeat, error) {
	var p Heartbeat
	w := struct {
		V *int `json:"v"`
		*Heartbeat
	}{Heartbeat: &p}
	if err := decode("heartbeat", b, MaxPayload, &w, &w.V); err != nil {
		return Heartbeat{}, err
	}
	p.V = Version
	if err := p.validate(); err != nil {
		return Heartbeat{}, err
	}
	return p, nil
}

// DecodeTap decodes a tap; the UID comes back normalised (upper-case hex
// without separators).
func DecodeTap(b []byte) (Tap, error) {
	var p Tap
	w := struct {
		V *int `json:"v"`
		*Tap
	}{Tap: &p}
	if err := decode("tap", b, MaxPayload, &w, &w.V); err != nil {
		return Tap{}, err
	}
	p.V = Version
	if err := p.validate(); err != nil {
		return Tap{}, err
	}
	return p, nil
}

// DecodeCommand decodes a server command.
func DecodeCommand(b []byte) (Command, error) {
	var p Command
	w := struct {
		V *int `json:"v"`
		*Command
	}{Command: &p}
	if err := decode("command", b, MaxPayload, &w, &w.V); err != nil {
		return Command{}, err
	}
	p.V = Version
	if err := p.validate(); err != nil {
		return Command{}, err
	}
	return p, nil
}

// DecodeAck decodes a device's command acknowledgement.
func DecodeAck(b []byte) (Ack, error) {
	var p Ack
	w := struct {
		V *int `json:"v"`
		*Ack
	}{Ack: &p}
	if err := decode("ack", b, MaxPayload, &w, &w.V); err != nil {
		return Ack{}, err
	}
	p.V = Version
	if err := p.validate(); err != nil {
		return Ack{}, err
	}
	return p, nil
}

// DecodeState decodes a device's relay state.
func DecodeState(b []byte) (State, error) {
	var p State
	w := struct {
		V *int `json:"v"`
		*State
	}{State: &p}
	if err := decode("state", b, MaxPayload, &w, &w.V); err != nil {
		return State{}, err
	}
	p.V = Version
	if err := p.validate(); err != nil {
		return State{}, err
	}
	return p, nil
}

// DecodeAllowlist decodes an allowlist; its limit is MaxAllowlistPayload
// bytes, not MaxPayload. Entries is never nil in the result.
func DecodeAllowlist(b []byte) (Allowlist, error) {
	var p Allowlist
	w := struct {
		V *int `json:"v"`
		*Allowlist
	}{Allowlist: &p}
	if err := decode("allowlist", b, MaxAllowlistPayload, &w, &w.V); err != nil {
		return Allowlist{}, err
	}
	p.V = Version
	if err := p.validate(); err != nil {
		return Allowlist{}, err
	}
	return p, nil
}

// DecodeServerStatus decodes the server's status. "online" is required.
func DecodeServerStatus(b []byte) (ServerStatus, error) {
	var p ServerStatus
	w := struct {
		V      *int  `json:"v"`
		Online *bool `json:"online"`
	}{}
	if err := decode("server status", b, MaxPayload, &w, &w.V); err != nil {
		return ServerStatus{}, err
	}
	if w.Online == nil {
		return ServerStatus{}, invalid("server status", "online is required (true or false)")
	}
	p.V, p.Online = Version, *w.Online
	return p, nil
}

// decode parses b, which must be one JSON object of at most limit bytes, into
// dst and checks the version that dst's "v" field read into *v.
func decode(what string, b []byte, limit int, dst any, v **int) error {
	if len(b) > limit {
		return invalid(what, "payload is %d bytes, at most %d allowed", len(b), limit)
	}
	if !utf8.Valid(b) {
		return invalid(what, "payload is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) == 0 {
		return invalid(what, "payload is empty")
	}
	if trimmed[0] != '{' {
		return invalid(what, "payload must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(dst); err != nil {
		// After a type error the decoder has read the rest of the object:
		// a payload of another version is reported as such, whatever else
		// differs in it.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && jsonPath(te.Field) != "v" && *v != nil && **v != Version {
			return versionError(what, **v)
		}
		return jsonError(what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid(what, "trailing data after the JSON object")
	}
	switch {
	case *v == nil:
		return invalid(what, `"v" is missing: every payload carries "v":%d (protocol version %d)`, Version, Version)
	case **v != Version:
		return versionError(what, **v)
	}
	return nil
}

func versionError(what string, v int) error {
	return invalid(what, "unsupported protocol version v=%d: this side speaks version %d", v, Version)
}

func jsonError(what string, err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field == "" {
			return invalid(what, "payload must be a JSON object")
		}
		return invalid(what, "%s must be %s, got JSON %s", jsonPath(te.Field), describe(te.Type), te.Value)
	case errors.As(err, &se):
		return invalid(what, "payload is not valid JSON: %s (at byte %d)", se.Error(), se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid(what, "payload is truncated JSON")
	}
	return invalid(what, "payload is not valid JSON: %s", err.Error())
}

// jsonPath drops from a field path the Go names of embedded structs (the
// contract's JSON names are all lower case), and writes an array index the way
// the other messages do: "Tap.ts" → "ts", "entries.0.h" → "entries[0].h".
// (encoding/json names the index from Go 1.27 on; before, "entries.h".)
func jsonPath(field string) string {
	var b strings.Builder
	for _, p := range strings.Split(field, ".") {
		switch {
		case p == "" || unicode.IsUpper(rune(p[0])):
		case isIndex(p) && b.Len() > 0:
			b.WriteString("[" + p + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
	}
	if b.Len() == 0 {
		return field
	}
	return b.String()
}

func isIndex(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// describe names a Go type as the JSON value it expects.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a " + t.Kind().String()
}
