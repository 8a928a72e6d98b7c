package fablab

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ID
		wantErr bool
	}{
		{"one", "1", 1, false},
		{"typical", "42", 42, false},
		{"max uint64", "18446744073709551615", ID(^uint64(0)), false},
		{"empty", "", 0, true},
		{"zero", "0", 0, true},
		{"zeros", "000", 0, true},
		{"leading zero", "042", 0, true},
		{"negative", "-1", 0, true},
		{"plus sign", "+1", 0, true},
		{"overflow", "18446744073709551616", 0, true},
		{"21 digits", "100000000000000000000", 0, true},
		{"many digits", strings.Repeat("9", 50), 0, true},
		{"letters", "abc", 0, true},
		{"hex", "0x1f", 0, true},
		{"trailing letter", "12a", 0, true},
		{"space", " 12", 0, true},
		{"trailing newline", "12\n", 0, true},
		{"underscore", "1_000", 0, true},
		{"decimal point", "1.0", 0, true},
		{"exponent", "1e3", 0, true},
		{"unicode digit", "١٢", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseID(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseID(%q) = %d, want error", tt.in, got)
				}
				if ErrorCode(err) != EINVALID {
					t.Errorf("ParseID(%q) code = %q, want %q", tt.in, ErrorCode(err), EINVALID)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseID(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() = %q, want %q", s, tt.in)
			}
		})
	}
}

func TestParseIDTruncatesLongInputInMessage(t *testing.T) {
	_, err := ParseID(strings.Repeat("x", 1000))
	if err == nil {
		t.Fatal("want error")
	}
	if msg := ErrorMessage(err); len(msg) > 120 {
		t.Errorf("message is %d bytes long, want the input truncated: %q", len(msg), msg)
	}
}

func TestIDJSON(t *testing.T) {
	type doc struct {
		ID    ID   `json:"id"`
		Org   ID   `json:"org,omitempty"`
		Items []ID `json:"items"`
	}
	tests := []struct {
		name string
		in   doc
		want string
	}{
		{"single", doc{ID: 7, Items: []ID{}}, `{"id":"7","items":[]}`},
		{"omitempty zero omitted", doc{ID: 1, Org: 0, Items: []ID{2, 3}}, `{"id":"1","items":["2","3"]}`},
		{"max", doc{ID: ID(^uint64(0)), Org: 5, Items: []ID{}}, `{"id":"18446744073709551615","org":"5","items":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("Marshal = %s, want %s", b, tt.want)
			}
			var back doc
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if back.ID != tt.in.ID || back.Org != tt.in.Org || len(back.Items) != len(tt.in.Items) {
				t.Fatalf("round trip = %+v, want %+v", back, tt.in)
			}
			for i := range back.Items {
				if back.Items[i] != tt.in.Items[i] {
					t.Fatalf("round trip = %+v, want %+v", back, tt.in)
				}
			}
		})
	}
}

func TestIDUnmarshalJSONRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"zero", `"0"`},
		{"leading zero", `"07"`},
		{"negative", `"-7"`},
		{"overflow", `"18446744073709551616"`},
		{"letters", `"seven"`},
		{"empty", `""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var id ID = 99
			err := json.Unmarshal([]byte(tt.in), &id)
			if err == nil {
				t.Fatalf("Unmarshal(%s) = %d, want error", tt.in, id)
			}
			if id != 99 {
				t.Errorf("Unmarshal(%s) changed the id to %d on error", tt.in, id)
			}
		})
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "42", "0", "007", "-1", "+1", "18446744073709551615", "18446744073709551616", "1e3", " 1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("ParseID(%q) error code %q, want %q", s, ErrorCode(err), EINVALID)
			}
			return
		}
		if id == 0 {
			t.Fatalf("ParseID(%q) accepted zero", s)
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q) = %d whose String is %q", s, id, id.String())
		}
		var back ID
		if err := back.UnmarshalText([]byte(s)); err != nil || back != id {
			t.Fatalf("UnmarshalText(%q) = %d, %v, want %d", s, back, err, id)
		}
	})
}
