package bolt

import (
	"syscall"

	bbolt "go.etcd.io/bbolt"
)

// releaseMapped drops the data file's pages from this process's mapping of
// it (madvise MADV_DONTNEED): they stay in the kernel's page cache, and a
// later read maps them again with a minor fault. bbolt maps the file
// read-only and shared and writes through the file, so nothing is lost.
// It runs inside a read transaction, which keeps bbolt from remapping the
// file meanwhile (a remap waits for every read transaction to end), so the
// address range is the data file's for as long as the call lasts.
func (s *Store) releaseMapped() error {
	return s.db.View(func(tx *bbolt.Tx) error {
		info := tx.DB().Info()
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, info.Data, uintptr(tx.Size()), syscall.MADV_DONTNEED); errno != 0 {
			return errno
		}
		return nil
	})
}
