package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// TestAPIConcurrentBookings is the double-booking race of the issue: 64
// clients, each with its own connection, released together, book 8 windows
// of one machine (8 clients per window, with different but pairwise
// overlapping intervals). Exactly one request per window wins; every other
// gets 409 booking_conflict; afterwards no two confirmed bookings overlap.
func TestAPIConcurrentBookings(t *testing.T) {
	const windows, perWindow = 8, 8
	h := newAPIHarness(t)

	// 64 different members, so that no rule per member interferes; staff books for them.
	members := make([]fablab.Member, windows*perWindow)
	for i := range members {
		m, err := h.store.CreateMember(context.Background(), fablab.Member{
			Email: fmt.Sprintf("racer%02d@fablab.test", i), Name: fmt.Sprintf("Racer %d", i), Group: "student"})
		if err != nil {
			t.Fatal(err)
		}
		members[i] = m
	}

	// Window k covers 90 minutes of Tuesday from 09:00 + 90k, so the 8 windows
	// fill the opening hours exactly. Every variant contains the window's
	// middle half hour, so any two requests of a window overlap, and none
	// leaves its window.
	variants := [][2]int{{0, 60}, {30, 90}, {30, 60}, {0, 90}}
	type result struct {
		window int
		iv     fablab.Interval
		status int
		code   string
		id     fablab.ID
	}
	results := make([]result, len(members))
	ready, done := sync.WaitGroup{}, sync.WaitGroup{}
	start := make(chan struct{})
	for i := range members {
		k, v := i/perWindow, variants[i%len(variants)]
		w := apiAt(1, 9, 0).Add(apiMinutes(90 * k))
		iv := fablab.Interval{Start: w.Add(apiMinutes(v[0])), End: w.Add(apiMinutes(v[1]))}
		body := apiBookingBody(h.printer.ID, iv.Start, iv.End)
		body["member_id"] = members[i].ID.String()
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			// Open the connection before the start, so that the requests
			// really arrive together.
			_, err := apiRoundTrip(client, h.srv.URL, apiReq{method: "GET", path: "/healthz"})
			ready.Done()
			if err != nil {
				t.Error(err)
				return
			}
			<-start
			rq := apiReq{method: "POST", path: "/api/v1/bookings", token: h.staff.Token, body: body}
			res, err := apiRoundTrip(client, h.srv.URL, rq)
			if err != nil {
				t.Error(err)
				return
			}
			apiCheckAlways(t, "POST /api/v1/bookings", res.status, res.header, res.body)
			r := result{window: k, iv: iv, status: res.status}
			if res.status == http.StatusCreated {
				var b fablab.Booking
				if err := json.Unmarshal(res.body, &b); err != nil {
					t.Errorf("decode booking: %v", err)
				}
				r.id = b.ID
			} else if res.status >= 400 {
				var p Problem
				if err := json.Unmarshal(res.body, &p); err == nil {
					r.code = p.Code
				}
			}
			results[i] = r
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()

	winners := map[int][]result{}
	for _, r := range results {
		switch {
		case r.status == http.StatusCreated:
			winners[r.window] = append(winners[r.window], r)
		case r.status == http.StatusConflict && r.code == fablab.CodeBookingConflict:
		default:
			t.Errorf("window %d %v: status %d code %q, want 201 or 409 booking_conflict", r.window, r.iv, r.status, r.code)
		}
	}
	for k := 0; k < windows; k++ {
		if n := len(winners[k]); n != 1 {
			t.Errorf("window %d: %d bookings succeeded, want exactly 1: %v", k, n, winners[k])
		}
	}

	// What the API lists afterwards: one confirmed booking per window, none overlapping.
	q := "machine_id=" + h.printer.ID.String() + "&from=" + url.QueryEscape(apiAt(1, 0, 0).Format(time.RFC3339)) + "&to=" + url.QueryEscape(apiAt(2, 0, 0).Format(time.RFC3339))
	res := h.do(t, "GET", "/api/v1/bookings?"+q, h.staff.Token, nil)
	res.want(t, http.StatusOK, "")
	var listed []fablab.Booking
	res.decode(t, &listed)
	var confirmed []fablab.Booking
	for _, b := range listed {
		if b.State == fablab.BookingConfirmed {
			confirmed = append(confirmed, b)
		}
	}
	if len(confirmed) != windows {
		t.Errorf("%d confirmed bookings listed, want %d", len(confirmed), windows)
	}
	for i := range confirmed {
		for j := i + 1; j < len(confirmed); j++ {
			if confirmed[i].Interval().Overlaps(confirmed[j].Interval()) {
				t.Errorf("bookings %s %v and %s %v overlap", confirmed[i].ID, confirmed[i].Interval(), confirmed[j].ID, confirmed[j].Interval())
			}
		}
	}
	won := map[fablab.ID]bool{}
	for _, rs := range winners {
		for _, r := range rs {
			won[r.id] = true
		}
	}
	for _, b := range confirmed {
		if !won[b.ID] {
			t.Errorf("booking %s is stored but no client was told it succeeded", b.ID)
		}
	}
}
