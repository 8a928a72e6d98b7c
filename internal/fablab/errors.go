// Package fablab holds FabGate's domain: the types of a lab (settings, members,
// machines, bookings…), their validation rules, the one error type every other
// package returns, and the clock. It depends on the standard library only.
package fablab

import (
	"errors"
	"fmt"
)

// Generic error codes. Every Error carries one of these or a more precise
// rule code (see the Rule* constants); the HTTP layer maps codes to statuses in
// one table and shows Code and Message to the client.
const (
	EINVALID      = "invalid_request"   // malformed or semantically wrong input
	ENOTFOUND     = "not_found"         // the addressed thing does not exist (or is not visible)
	ECONFLICT     = "conflict"          // the request conflicts with current state
	EUNAUTHORIZED = "unauthorized"      // no or bad credentials
	EFORBIDDEN    = "forbidden"         // authenticated but not allowed
	ETOOMANY      = "too_many_attempts" // throttled
	EINTERNAL     = "internal"          // a bug or an I/O failure; details are logged, never shown
	EDUPLICATE    = "duplicate"         // the same message was handled before (taps); never an HTTP answer
	// ESTORAGEFULL: a write found the server's disk full (or the data file
	// at the process's file size limit, or the user's disk quota used up).
	// Nothing of it was written; the same request succeeds once the
	// operator has freed space.
	ESTORAGEFULL = "storage_full"
)

// Booking rule and state codes: stable identifiers clients can rely on.
const (
	CodeBookingConflict     = "booking_conflict"
	CodeOutsideOpeningHours = "outside_opening_hours"
	CodeLabClosed           = "lab_closed"
	CodeSlotGranularity     = "slot_granularity"
	CodeTooShort            = "booking_too_short"
	CodeTooLong             = "booking_too_long"
	CodeTooFarAhead         = "booking_too_far_ahead"
	CodeInThePast           = "booking_in_the_past"
	CodeWeeklyQuota         = "weekly_quota_exceeded"
	CodeCancellationCutoff  = "cancellation_cutoff"
	CodeMachineUnavailable  = "machine_unavailable"
	CodeMaintenance         = "machine_maintenance"
	CodeTrainingRequired    = "training_required"
	CodeMemberInactive      = "member_inactive"
	CodeNotCancellable      = "booking_not_cancellable"
)

// Error is FabGate's one error type. Message is safe to show to a client; the
// wrapped Err (if any) is for logs only.
type Error struct {
	Code    string
	Message string
	Err     error
	// Field names the request field the error is about (its JSON name), so
	// that a form shows the message next to that field; "" for the whole request.
	Field string
	// Key names Message in the translated messages (web/i18n, "problem_…"),
	// and Args are its parameters as name/value pairs (strings, numbers,
	// time.Time in the lab's zone, Date, Period, Money, VATRate): a client
	// reading French gets the message in French. Message stays the English
	// text.
	Key  string
	Args []any
}

// Say returns e with the key and parameters of its translated message.
func (e *Error) Say(key string, args ...any) *Error {
	e.Key, e.Args = key, args
	return e
}

// ErrorKey returns the translated message's key and parameters of err, or "".
func ErrorKey(err error) (string, []any) {
	var e *Error
	if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Key, e.Args
	}
	return "", nil
}

// On returns e naming field as the request field it is about.
func (e *Error) On(field string) *Error {
	e.Field = field
	return e
}

// ErrorField returns the request field err is about, or "".
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Field
	}
	return ""
}

// Error writes the code, the message and any wrapped error.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the wrapped error, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Internal wraps an unexpected failure. The client sees only "internal error".
func Internal(err error, format string, args ...any) *Error {
	return &Error{Code: EINTERNAL, Message: fmt.Sprintf(format, args...), Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Message
	}
	return "internal error"
}
