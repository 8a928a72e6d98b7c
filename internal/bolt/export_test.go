package bolt

// SetReportChunk makes the reports read n keys per read transaction until
// the returned function restores the default.
func SetReportChunk(n int) (restore func()) {
	old := reportChunk
	reportChunk = n
	return func() { reportChunk = old }
}
