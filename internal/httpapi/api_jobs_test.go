package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/jobs"
)

// apiJobs is a registry of test jobs on the harness's clock: "tidy"
// succeeds taking 2 s of the clock, "broken" fails, "slow" runs until
// released, telling started when it begins.
type apiJobs struct {
	reg              *jobs.Registry
	started, release chan struct{}
}

// newAPIJobsHarness serves the harness's lab with the test jobs.
func newAPIJobsHarness(t *testing.T) (*apiHarness, *apiJobs) {
	t.Helper()
	h := newAPIHarness(t)
	reg, err := jobs.New(jobs.Config{Location: apiStart.Location(), Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	j := &apiJobs{reg: reg, started: make(chan struct{}, 1), release: make(chan struct{})}
	for _, job := range []jobs.Job{
		{Name: "tidy", Schedule: "0 30 3 * * *", Run: func(context.Context) error { h.clock.Advance(2 * time.Second); return nil }},
		{Name: "broken", Schedule: "0 * * * * *", Run: func(context.Context) error { return errors.New("ledger locked") }},
		{Name: "slow", Schedule: "@hourly", Run: func(ctx context.Context) error {
			j.started <- struct{}{}
			select {
			case <-j.release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}},
	} {
		if err := reg.Add(job); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(reg.Stop)
	h.srv.Close()
	h.server, err = New(Config{Store: h.store, Now: h.clock.Now, Registry: prometheus.NewRegistry(), Password: apiCheapPassword, PublicURL: apiPublicURL, Jobs: reg})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.server.Handler())
	h.client = h.srv.Client()
	t.Cleanup(h.srv.Close) // before the registry stops: cleanups run last first
	return h, j
}

// jobStatus returns the named job's status from GET /api/v1/jobs as as.
func (h *apiHarness) jobStatus(t *testing.T, as *apiAccount, name string) jobs.JobStatus {
	t.Helper()
	res := h.do(t, "GET", "/api/v1/jobs", as.Token, nil)
	res.want(t, http.StatusOK, "")
	var list []jobs.JobStatus
	res.decode(t, &list)
	for _, s := range list {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("GET /api/v1/jobs lacks %s: %+v", name, list)
	return jobs.JobStatus{}
}

func TestAPIJobsList(t *testing.T) {
	h, _ := newAPIJobsHarness(t)
	h.do(t, "GET", "/api/v1/jobs", h.alice.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
	h.do(t, "GET", "/api/v1/jobs", "", nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	for _, as := range []*apiAccount{h.staff, h.admin} {
		res := h.do(t, "GET", "/api/v1/jobs", as.Token, nil)
		res.want(t, http.StatusOK, "")
		var list []map[string]any
		res.decode(t, &list)
		if len(list) != 3 || list[0]["name"] != "tidy" || list[0]["schedule"] != "0 30 3 * * *" || list[0]["runs"] != 0.0 || list[0]["running"] != false {
			t.Errorf("as %s: %v", as.Role, list)
		}
		if _, ok := list[0]["last_run_at"]; ok {
			t.Errorf("last_run_at before any run: %v", list[0])
		}
	}
}

func TestAPIJobsRun(t *testing.T) {
	h, _ := newAPIJobsHarness(t)
	h.do(t, "POST", "/api/v1/jobs/tidy/run", h.staff.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
	h.do(t, "POST", "/api/v1/jobs/tidy/run", h.alice.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
	if s := h.jobStatus(t, h.admin, "tidy"); s.Runs != 0 {
		t.Fatalf("a refused request ran the job: %+v", s)
	}
	h.do(t, "POST", "/api/v1/jobs/nope/run", h.admin.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)

	start := h.clock.Now()
	res := h.do(t, "POST", "/api/v1/jobs/tidy/run", h.admin.Token, nil)
	res.want(t, http.StatusOK, "")
	var s jobs.JobStatus
	res.decode(t, &s)
	if s.Name != "tidy" || s.Runs != 1 || s.LastOutcome != jobs.OutcomeOK || s.LastTrigger != jobs.TriggerManual ||
		s.LastRunAt == nil || !s.LastRunAt.Equal(start) || s.LastDurationMS == nil || *s.LastDurationMS != 2000 {
		t.Errorf("after the run: %+v", s)
	}

	// A failing run is the job's failure, answered with its status.
	res = h.do(t, "POST", "/api/v1/jobs/broken/run", h.admin.Token, nil)
	res.want(t, http.StatusOK, "")
	res.decode(t, &s)
	if s.Runs != 1 || s.Failures != 1 || s.LastOutcome != jobs.OutcomeError || s.LastError != "ledger locked" {
		t.Errorf("after the failing run: %+v", s)
	}
	if got := h.jobStatus(t, h.staff, "broken"); got.Failures != 1 || got.LastError != "ledger locked" {
		t.Errorf("GET after the failing run: %+v", got)
	}
}

// TestAPIJobsRunWhileRunning: a second run of a running job is 409, and
// the first one, once released, answers its status.
func TestAPIJobsRunWhileRunning(t *testing.T) {
	h, j := newAPIJobsHarness(t)
	first := make(chan apiResp, 1)
	go func() {
		r, err := apiRoundTrip(h.client, h.srv.URL, apiReq{method: "POST", path: "/api/v1/jobs/slow/run", token: h.admin.Token})
		if err != nil {
			r.status = -1
		}
		first <- r
	}()
	<-j.started
	if s := h.jobStatus(t, h.staff, "slow"); !s.Running || s.RunningSince == nil {
		t.Errorf("while running: %+v", s)
	}
	res := h.do(t, "POST", "/api/v1/jobs/slow/run", h.admin.Token, nil)
	res.want(t, http.StatusConflict, fablab.ECONFLICT)
	if p := res.problem(t); p.Detail == "" {
		t.Errorf("409 without a detail: %+v", p)
	}
	close(j.release)
	r := <-first
	r.want(t, http.StatusOK, "")
	var s jobs.JobStatus
	r.decode(t, &s)
	if s.Running || s.Runs != 1 || s.LastOutcome != jobs.OutcomeOK {
		t.Errorf("the first run: %+v", s)
	}
}

// TestAPIJobsNone: a server without jobs lists none and runs none.
func TestAPIJobsNone(t *testing.T) {
	h := newAPIHarness(t)
	res := h.do(t, "GET", "/api/v1/jobs", h.staff.Token, nil)
	res.want(t, http.StatusOK, "")
	if string(res.body) != "[]" {
		t.Errorf("body %s, want []", res.body)
	}
	h.do(t, "POST", "/api/v1/jobs/tidy/run", h.admin.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
}
