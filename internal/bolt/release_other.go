//go:build !linux

package bolt

// releaseMapped leaves the mapping as it is outside Linux.
func (s *Store) releaseMapped() error { return nil }
