package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/fabgate/fabgate/internal/wire"
)

// disk keeps what a device must not lose across a restart or a power cut:
// the allowlist, the offline queue, and when it last had the server. Every
// file is replaced atomically (written aside, synced, renamed, directory
// synced), so a power cut leaves the old version or the new one.
//
//	<dir>/allowlist.json   the last allowlist received, as received
//	<dir>/meta.json        diskMeta
//	<dir>/queue/<n>.json   one replayable tap each, in order of n
type disk struct {
	dir string

	mu   sync.Mutex // the queue: held across read → publish → remove
	next uint64     // the next queue number
}

// diskMeta is the small state kept besides the queue.
type diskMeta struct {
	// LastOnline is when the device last had a link and the server online
	// (Unix seconds): the allowlist's freshness counts from it.
	LastOnline int64 `json:"last_online"`
	// LastAlive is when the device last noted it was running: the end of a
	// session cut short by a restart.
	LastAlive int64 `json:"last_alive"`
}

// queued is one entry of the offline queue.
type queued struct {
	key string
	tap wire.Tap
}

func openDisk(dir string) (*disk, error) {
	if err := os.MkdirAll(filepath.Join(dir, "queue"), 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w (set state_dir to a directory the bridge may write)", dir, err)
	}
	d := &disk{dir: dir, next: 1}
	entries, err := os.ReadDir(filepath.Join(dir, "queue"))
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") { // a write cut short: never renamed into place
			os.Remove(filepath.Join(dir, "queue", name))
			continue
		}
		if n, ok := queueNumber(name); ok && n >= d.next {
			d.next = n + 1
		}
	}
	return d, nil
}

func queueNumber(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, ".json")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// writeAtomic replaces dir/name with data.
func writeAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// saveAllowlist keeps the allowlist as received.
func (d *disk) saveAllowlist(raw []byte) error {
	return writeAtomic(d.dir, "allowlist.json", raw)
}

// loadAllowlist returns the allowlist kept, if any. One that no longer
// decodes is reported and ignored: the device then has none until the
// server sends it again.
func (d *disk) loadAllowlist() (wire.Allowlist, bool, error) {
	raw, err := os.ReadFile(filepath.Join(d.dir, "allowlist.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return wire.Allowlist{}, false, nil
	}
	if err != nil {
		return wire.Allowlist{}, false, err
	}
	l, err := wire.DecodeAllowlist(raw)
	if err != nil {
		return wire.Allowlist{}, false, fmt.Errorf("kept allowlist: %w", err)
	}
	return l, true, nil
}

func (d *disk) saveMeta(m diskMeta) error {
	b, _ := json.Marshal(m)
	return writeAtomic(d.dir, "meta.json", b)
}

func (d *disk) loadMeta() (diskMeta, error) {
	var m diskMeta
	raw, err := os.ReadFile(filepath.Join(d.dir, "meta.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return diskMeta{}, fmt.Errorf("%s: %w", filepath.Join(d.dir, "meta.json"), err)
	}
	return m, nil
}

// enqueue appends a tap to the offline queue and returns its key.
func (d *disk) enqueue(t wire.Tap) (string, error) {
	b, err := wire.Encode(&t)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := fmt.Sprintf("%020d.json", d.next)
	if err := writeAtomic(filepath.Join(d.dir, "queue"), key, b); err != nil {
		return "", fmt.Errorf("queue tap %s: %w", t.MsgID, err)
	}
	d.next++
	return key, nil
}

// update rewrites a queued tap if it is still queued; it reports whether it
// was.
func (d *disk) update(key string, fn func(*wire.Tap)) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := filepath.Join(d.dir, "queue")
	t, err := readQueued(filepath.Join(dir, key))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	fn(&t)
	b, err := wire.Encode(&t)
	if err != nil {
		return false, err
	}
	return true, writeAtomic(dir, key, b)
}

func readQueued(path string) (wire.Tap, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return wire.Tap{}, err
	}
	return wire.DecodeTap(raw)
}

// queue returns the queued taps in order. A file that does not decode is
// set aside (renamed *.bad) and reported, so one bad entry cannot block the
// queue forever.
func (d *disk) queue() ([]queued, []error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queueLocked()
}

func (d *disk) queueLocked() ([]queued, []error) {
	dir := filepath.Join(d.dir, "queue")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{err}
	}
	var keys []string
	for _, e := range entries {
		if _, ok := queueNumber(e.Name()); ok {
			keys = append(keys, e.Name())
		}
	}
	sort.Strings(keys) // zero-padded numbers
	var out []queued
	var errs []error
	for _, k := range keys {
		t, err := readQueued(filepath.Join(dir, k))
		if err != nil {
			errs = append(errs, fmt.Errorf("queued tap %s set aside: %w", k, err))
			os.Rename(filepath.Join(dir, k), filepath.Join(dir, k+".bad"))
			continue
		}
		out = append(out, queued{key: k, tap: t})
	}
	return out, errs
}

// replay publishes the queued taps in order and removes each once publish
// returned nil; it stops at the first failure. The queue is held throughout,
// so an entry is never rewritten between its publication and its removal.
func (d *disk) replay(publish func(wire.Tap) error) (int, []error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q, errs := d.queueLocked()
	n := 0
	for _, e := range q {
		if err := publish(e.tap); err != nil {
			return n, append(errs, err)
		}
		if err := os.Remove(filepath.Join(d.dir, "queue", e.key)); err != nil {
			return n, append(errs, err)
		}
		n++
	}
	return n, errs
}
