package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/jobs"
)

// Jobs are the server's scheduled jobs (a *jobs.Registry).
type Jobs interface {
	// Status returns every job's status.
	Status() []jobs.JobStatus
	// RunNow runs a job once, now, and returns when it has ended.
	// Errors: ENOTFOUND (no such job), ECONFLICT (it is running); a run
	// that failed returns a *jobs.Failed (the failure is in its status).
	RunNow(ctx context.Context, name string) error
}

// listJobs answers the status of every scheduled job.
func (s *Server) listJobs(c *gin.Context) {
	list := []jobs.JobStatus{}
	if s.jobs != nil {
		list = s.jobs.Status()
	}
	c.JSON(http.StatusOK, list)
}

// runJob runs a job now and answers its status once it has ended, failed
// or not: the failure is the job's, recorded in its status, not the
// request's. The run goes on if the client goes away (a job is cut short
// only by the server's shutdown).
func (s *Server) runJob(c *gin.Context) {
	name := c.Param("name")
	if s.jobs == nil {
		s.fail(c, fablab.Errorf(fablab.ENOTFOUND, "this server runs no jobs"))
		return
	}
	err := s.jobs.RunNow(context.WithoutCancel(c.Request.Context()), name)
	var failed *jobs.Failed
	if err != nil && !errors.As(err, &failed) {
		s.fail(c, err)
		return
	}
	for _, st := range s.jobs.Status() {
		if st.Name == name {
			c.JSON(http.StatusOK, st)
			return
		}
	}
	s.fail(c, fablab.Errorf(fablab.ENOTFOUND, "there is no job named %q (GET /api/v1/jobs lists them)", name))
}
