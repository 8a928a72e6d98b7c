package bolt

import (
	"errors"
	"strings"
	"syscall"

	"github.com/fabgate/fabgate/internal/fablab"
)

// storageFullMessage is what a client is told when a write found no room.
const storageFullMessage = "the server's storage is full, so nothing was saved: " +
	"the lab's administrator must free disk space on the server (the disk of its data directory), then try again"

// fullErrnos are the errors of a write that found no room: the disk full,
// the process's file size limit reached (RLIMIT_FSIZE), the user's quota
// used up. For the lab they are one thing: space must be freed.
var fullErrnos = []syscall.Errno{syscall.ENOSPC, syscall.EFBIG, syscall.EDQUOT}

// storageFull returns err as an ESTORAGEFULL error when it is a write that
// found no room, and err unchanged otherwise. bbolt rolls such a
// transaction back whole, at whichever step of its commit it failed (the
// file's growth, its pages, their sync): nothing of it is in the file, and
// the next write starts from the last one committed.
func storageFull(err error) error {
	if err == nil || !isStorageFull(err) || fablab.ErrorCode(err) == fablab.ESTORAGEFULL {
		return err
	}
	return (&fablab.Error{Code: fablab.ESTORAGEFULL, Message: storageFullMessage, Err: err}).Say("problem_storage_full")
}

// IsStorageFull tells whether err is a write that found no room: the
// store's own writes (ESTORAGEFULL) or any other file's.
func IsStorageFull(err error) bool { return err != nil && isStorageFull(err) }

// isStorageFull tells whether err is a write that found no room. bbolt
// reports a failure to grow the file as text ("file resize error: %s"), not
// as a wrapped error, hence the comparison of the texts too. A refusal of
// FabGate's own (a *fablab.Error with any code but EINTERNAL) is never one,
// whatever its message says.
func isStorageFull(err error) bool {
	var fe *fablab.Error
	if errors.As(err, &fe) && fe.Code != fablab.EINTERNAL {
		return fe.Code == fablab.ESTORAGEFULL
	}
	for _, errno := range fullErrnos {
		if errors.Is(err, errno) || strings.Contains(err.Error(), errno.Error()) {
			return true
		}
	}
	return false
}
