package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestE2EJobs: the served lab runs the lab's and the mail's jobs on its
// schedule, lists them to staff, runs one for an admin, and counts the run
// in its metrics.
func TestE2EJobs(t *testing.T) {
	srv := startServerAt(t, clockAt(labTime), "--data", t.TempDir(), "--demo", "--metrics-token", e2eMetricsToken)
	admin := demoAccount(t, "admin")
	maker := demoAccount(t, "maker")
	adminTok := login(t, srv.url, admin.Email, admin.Password)
	makerTok := login(t, srv.url, maker.Email, maker.Password)

	type status struct {
		Name        string
		Schedule    string
		Runs        int
		LastOutcome string     `json:"last_outcome"`
		LastTrigger string     `json:"last_trigger"`
		NextRunAt   *time.Time `json:"next_run_at"`
	}
	var list []status
	if st := call(t, "GET", srv.url+"/api/v1/jobs", adminTok, nil, &list); st != http.StatusOK {
		t.Fatalf("GET /api/v1/jobs: %d", st)
	}
	want := map[string]string{"sessions_sweep": "*/15 * * * * *", "allowlists": "0 0 * * * *", "prune": "0 30 3 * * *",
		"reminders": "0 * * * * *", "no_shows": "0 * * * * *", "billing": "30 * * * * *", "invoices": "0 0 2 1 * *"}
	if len(list) != len(want) {
		t.Errorf("jobs %+v, want %v", list, want)
	}
	for _, s := range list {
		if want[s.Name] != s.Schedule {
			t.Errorf("job %s: schedule %q, want %q", s.Name, s.Schedule, want[s.Name])
		}
		// The lab's time, not the system's: within a day of it (the
		// monthly invoices: within a month, on the 1st at 02:00).
		bound := labTime.Add(25 * time.Hour)
		if s.Name == "invoices" {
			bound = labTime.AddDate(0, 1, 1)
			if n := s.NextRunAt; n != nil && (n.In(labTime.Location()).Day() != 1 || n.In(labTime.Location()).Hour() != 2) {
				t.Errorf("invoices next run %v, want the 1st at 02:00 lab time", n)
			}
			if s.Runs != 1 || s.LastTrigger != "catch_up" || s.LastOutcome != "ok" {
				t.Errorf("invoices at start: %+v, want one catch-up run, ok", s)
			}
		}
		if s.NextRunAt == nil || s.NextRunAt.Before(labTime) || s.NextRunAt.After(bound) {
			t.Errorf("job %s: next_run_at %v, want after %v", s.Name, s.NextRunAt, labTime)
		}
	}
	if st := call(t, "GET", srv.url+"/api/v1/jobs", makerTok, nil, nil); st != http.StatusForbidden {
		t.Errorf("GET /api/v1/jobs as a maker: %d, want 403", st)
	}

	var s status
	if st := call(t, "POST", srv.url+"/api/v1/jobs/reminders/run", adminTok, nil, &s); st != http.StatusOK {
		t.Fatalf("POST /api/v1/jobs/reminders/run: %d", st)
	}
	if s.Name != "reminders" || s.Runs < 1 || s.LastOutcome != "ok" {
		t.Errorf("after the run: %+v", s)
	}

	req, _ := http.NewRequest("GET", srv.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e2eMetricsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`fabgate_job_runs_total{job="reminders",outcome="ok"}`,
		`fabgate_job_duration_seconds_count{job="reminders"}`,
		`fabgate_job_last_success_timestamp_seconds{job="reminders"}`,
		`fabgate_job_running{job="sessions_sweep"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
