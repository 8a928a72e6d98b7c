package wire

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

// dcase is one decoder table case: in is accepted when err is empty, else it
// must be rejected with EINVALID and a message containing err. want, when
// set, is the decoded value expected.
type dcase[T any] struct {
	name string
	in   string
	err  string
	want *T
}

func runDecodeCases[T any](t *testing.T, decode func([]byte) (T, error), cases []dcase[T]) {
	t.Helper()
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode([]byte(tc.in))
			if tc.err == "" {
				if err != nil {
					t.Fatalf("rejected %s: %v", clipTest(tc.in), err)
				}
				if tc.want != nil && !reflect.DeepEqual(got, *tc.want) {
					t.Fatalf("decoded %+v, want %+v", got, *tc.want)
				}
				return
			}
			wantInvalid(t, err, tc.err)
			if !reflect.ValueOf(got).IsZero() {
				t.Fatalf("a rejected payload returned a non-zero value %+v", got)
			}
		})
	}
}

// wantInvalid checks err is a *fablab.Error of code EINVALID whose message
// contains msg.
func wantInvalid(t *testing.T, err error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want error containing %q", msg)
	}
	var fe *fablab.Error
	if !errors.As(err, &fe) || fe.Code != fablab.EINVALID {
		t.Fatalf("error %v (%T) is not a *fablab.Error with code EINVALID", err, err)
	}
	if !strings.Contains(fe.Message, msg) {
		t.Fatalf("message %q does not contain %q", fe.Message, msg)
	}
}

func clipTest(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// hexHash returns a valid allowlist hash made of c.
func hexHash(c byte) string { return strings.Repeat(string(c), 64) }
