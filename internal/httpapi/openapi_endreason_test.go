package httpapi

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

// TestOpenAPIEndReasonEnum checks that the Session schema's end_reason enum
// is exactly fablab.EndReasons: every value the store accepts (it refuses
// any other) is documented, and the document promises no value the server
// cannot produce or store.
func TestOpenAPIEndReasonEnum(t *testing.T) {
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	sess, ok := doc.Components.Schemas["Session"]
	if !ok {
		t.Fatal("no Session schema in openapi.json")
	}
	enum := sess.Properties["end_reason"].Enum
	if len(enum) == 0 {
		t.Fatal("Session.end_reason has no enum")
	}
	var want []string
	for _, r := range fablab.EndReasons() {
		want = append(want, string(r))
	}
	for _, v := range enum {
		if !slices.Contains(want, v) {
			t.Errorf("openapi.json Session.end_reason lists %q, not a fablab end reason", v)
		}
	}
	for _, v := range want {
		if !slices.Contains(enum, v) {
			t.Errorf("end reason %q is missing from openapi.json Session.end_reason", v)
		}
	}
}
