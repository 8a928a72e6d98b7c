package jobs

import "github.com/prometheus/client_golang/prometheus"

// metrics are the jobs' Prometheus metrics, labelled by job name (a name
// the code chose, never one a client sent).
type metrics struct {
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
	running     *prometheus.GaugeVec
}

func newMetrics() metrics {
	return metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fabgate_job_runs_total", Help: "Runs of the scheduled jobs by outcome: ok, error, panic, skipped (the previous run still running).",
		}, []string{"job", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fabgate_job_duration_seconds", Help: "How long the scheduled jobs' runs took (skipped ones apart).",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 15, 60, 300},
		}, []string{"job"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fabgate_job_last_success_timestamp_seconds", Help: "When each job's last successful run ended (Unix time; 0 before the first).",
		}, []string{"job"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fabgate_job_running", Help: "1 while the job runs, else 0.",
		}, []string{"job"}),
	}
}

func (m metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.runs, m.duration, m.lastSuccess, m.running} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// init makes the job's series exist from its registration, at zero, so
// that an alert on them sees a job that never ran.
func (m metrics) init(job string) {
	for _, o := range outcomes {
		m.runs.WithLabelValues(job, string(o))
	}
	m.duration.WithLabelValues(job)
	m.lastSuccess.WithLabelValues(job)
	m.running.WithLabelValues(job)
}
