package fablab

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestErrorString(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"code and message", &Error{Code: ENOTFOUND, Message: "member 7 does not exist"}, "not_found: member 7 does not exist"},
		{"with wrapped error", &Error{Code: EINTERNAL, Message: "reading member", Err: io.ErrUnexpectedEOF}, "internal: reading member: unexpected EOF"},
		{"Errorf formats", Errorf(ECONFLICT, "slot %s is taken", "10:00"), "conflict: slot 10:00 is taken"},
		{"Errorf without args keeps percent literal", Errorf(EINVALID, "100%% sure"), "invalid_request: 100% sure"},
		{"Internal formats and wraps", Internal(io.EOF, "decoding %s", "settings"), "internal: decoding settings: EOF"},
		{"Internal with nil error", Internal(nil, "no cause"), "internal: no cause"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorUnwrap(t *testing.T) {
	e := Internal(io.ErrUnexpectedEOF, "reading")
	if !errors.Is(e, io.ErrUnexpectedEOF) {
		t.Errorf("errors.Is(Internal(ErrUnexpectedEOF), ErrUnexpectedEOF) = false")
	}
	if got := Errorf(EINVALID, "x").Unwrap(); got != nil {
		t.Errorf("Errorf(...).Unwrap() = %v, want nil", got)
	}
	wrapped := fmt.Errorf("handler: %w", e)
	var fe *Error
	if !errors.As(wrapped, &fe) || fe != e {
		t.Errorf("errors.As through %%w did not find the *Error")
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode string
		wantMsg  string
	}{
		{"nil", nil, "", "internal error"},
		{"plain error", errors.New("disk on fire at /var/lib/fabgate"), EINTERNAL, "internal error"},
		{"io error", io.EOF, EINTERNAL, "internal error"},
		{"Errorf", Errorf(ENOTFOUND, "machine 3 does not exist"), ENOTFOUND, "machine 3 does not exist"},
		{"rule code", Errorf(CodeTooLong, "at most 240 minutes"), CodeTooLong, "at most 240 minutes"},
		{"wrapped with %w", fmt.Errorf("create booking: %w", Errorf(CodeBookingConflict, "slot taken")), CodeBookingConflict, "slot taken"},
		{"wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", Errorf(EFORBIDDEN, "staff only"))), EFORBIDDEN, "staff only"},
		{"joined", errors.Join(errors.New("other"), Errorf(ETOOMANY, "slow down")), ETOOMANY, "slow down"},
		{"wrapped with %v loses the code", fmt.Errorf("create booking: %v", Errorf(ECONFLICT, "slot taken")), EINTERNAL, "internal error"},
		{"Internal hides its message", Internal(errors.New("bolt: tx closed"), "secret bucket layout"), EINTERNAL, "internal error"},
		{"Errorf EINTERNAL hides its message", Errorf(EINTERNAL, "secret path /etc/fabgate"), EINTERNAL, "internal error"},
		{"wrapped Internal hides its message", fmt.Errorf("ctx: %w", Internal(nil, "secret")), EINTERNAL, "internal error"},
		{"first Error in the chain wins", Internal(Errorf(ENOTFOUND, "inner"), "outer"), EINTERNAL, "internal error"},
		{"outer client error over inner internal", &Error{Code: ECONFLICT, Message: "try again", Err: Internal(io.EOF, "secret")}, ECONFLICT, "try again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode() = %q, want %q", got, tt.wantCode)
			}
			msg := ErrorMessage(tt.err)
			if msg != tt.wantMsg {
				t.Errorf("ErrorMessage() = %q, want %q", msg, tt.wantMsg)
			}
			if strings.Contains(msg, "secret") || strings.Contains(msg, "fire") || strings.Contains(msg, "bolt") {
				t.Errorf("ErrorMessage() = %q leaks internal details", msg)
			}
		})
	}
}
