package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/fabgate/fabgate/internal/fablab"
)

// CheckFile checks the data file at path without writing to it, as a backup
// is checked before it is kept: the file opens read-only, it is a FabGate
// data file of a schema version this code can open (older ones are migrated
// when Open opens them, not here), and bbolt's consistency check finds
// nothing. Open, by contrast, migrates the file it opens.
func CheckFile(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fablab.Errorf(fablab.ECONFLICT, "%s is locked by another process (a running server's data file? check a copy)", path)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	if err := checkSize(db); err != nil {
		return err
	}
	return db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bMeta)
		if meta == nil {
			return fmt.Errorf("%s is not a FabGate data file (no meta bucket)", path)
		}
		b := meta.Get(kSchema)
		if len(b) != 8 {
			return fmt.Errorf("%s is not a FabGate data file (no schema version)", path)
		}
		if v := binary.BigEndian.Uint64(b); v > SchemaVersion {
			return fmt.Errorf("%s has schema version %d, newer than this fabgate (%d): upgrade fabgate", path, v, SchemaVersion)
		}
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s is inconsistent:\n%w", path, errors.Join(errs...))
		}
		return nil
	})
}

// checkSize refuses a file shorter than its own pages reach: a copy cut
// short (a full disk, an interrupted transfer). bbolt maps the file into
// memory and would fault on the first page past its end, killing the
// process instead of returning an error. It reads only the meta page, so it
// runs before anything else touches the file's pages; a read-only open
// reads nothing else (a write open reads the freelist: see checkExisting).
func checkSize(db *bbolt.DB) error {
	fi, err := os.Stat(db.Path())
	if err != nil {
		return err
	}
	return db.View(func(tx *bbolt.Tx) error {
		if reach := tx.Size(); fi.Size() < reach {
			return &cutShortError{path: db.Path(), size: fi.Size(), reach: reach}
		}
		return nil
	})
}

// checkExisting runs checkSize on the file at path, opened read-only, when
// there is one: a write open cannot be checked before it reads the file.
func checkExisting(path string, timeout time.Duration) error {
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		return nil // a new file; the write open reports anything else
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return err
	}
	defer db.Close()
	return checkSize(db)
}

// cutShortError is a data file shorter than its pages reach.
type cutShortError struct {
	path        string
	size, reach int64
}

func (e *cutShortError) Error() string {
	return fmt.Sprintf("data file %s is cut short: %d bytes, where its pages reach %d (a copy that did not finish? use another copy or a backup)", e.path, e.size, e.reach)
}
