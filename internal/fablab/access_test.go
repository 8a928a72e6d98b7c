package fablab

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestEndReasonsListEveryConstant checks that every End* constant of this
// package is in EndReasons (and Valid), and that the list holds nothing
// else: a new end reason cannot be stored (the store checks Valid) nor
// escape the API's enum (checked in internal/httpapi against EndReasons)
// without being listed.
func TestEndReasonsListEveryConstant(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "access.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var consts []EndReason
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "End") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s is not a string literal", name.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				consts = append(consts, EndReason(v))
			}
		}
	}
	if len(consts) == 0 {
		t.Fatal("no End* constants found in access.go")
	}
	list := EndReasons()
	for _, c := range consts {
		if !slices.Contains(list, c) || !c.Valid() {
			t.Errorf("End* constant %q is not in EndReasons or not Valid", c)
		}
	}
	for _, r := range list {
		if !slices.Contains(consts, r) {
			t.Errorf("EndReasons lists %q, which no End* constant names", r)
		}
		if !r.Valid() {
			t.Errorf("EndReasons lists %q, which is not Valid", r)
		}
	}
}

func TestParseEndReason(t *testing.T) {
	for _, r := range EndReasons() {
		got, err := ParseEndReason(string(r))
		if err != nil || got != r {
			t.Errorf("ParseEndReason(%q) = %q, %v", r, got, err)
		}
	}
	for _, s := range []string{"", "replaced ", "TAP_OUT", "device_restart", "in_use", "no_session"} {
		if _, err := ParseEndReason(s); ErrorCode(err) != EINVALID {
			t.Errorf("ParseEndReason(%q): err %v, want %s", s, err, EINVALID)
		}
		if EndReason(s).Valid() {
			t.Errorf("EndReason(%q).Valid() = true", s)
		}
	}
}

// TestDeviceEndReason maps what a device may send as the end of a session
// it ran alone (fabgate-bridge's codes, the server's own codes echoed, deny
// codes, anything) to a valid end reason.
func TestDeviceEndReason(t *testing.T) {
	cases := []struct {
		name, code string
		want       EndReason
	}{
		{"none: an ordinary end", "", EndTapOut},
		{"tap_out", "tap_out", EndTapOut},
		{"until reached", "booking_end", EndBookingEnd},
		{"relay went off", "relay_off", EndRelayOff},
		{"lock echoed: staff", "staff", EndStaff},
		{"bridge stopped", "device_restart", EndRelayOff},
		{"the server's unlock took over", "replaced", EndReplaced},
		{"a device cannot make it unbillable", "relay_unconfirmed", EndRelayOff},
		{"late deny code", "member_inactive", EndRelayOff},
		{"lock without a session", "no_session", EndRelayOff},
		{"bridge relay fault", "relay_fault", EndRelayOff},
		{"upper case is another code", "TAP_OUT", EndRelayOff},
		{"anything", "\u00e9t\u00e9 \x00", EndRelayOff},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := DeviceEndReason(c.code)
			if got != c.want || !got.Valid() {
				t.Errorf("DeviceEndReason(%q) = %q, want %q", c.code, got, c.want)
			}
		})
	}
}
