package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors returned by the catalog.
var (
	// ErrNotFound is returned by a single-record read when the key is absent.
	ErrNotFound = errors.New("catalog: record not found")
	// ErrCorrupt wraps every failure to decode or validate a stored record,
	// and every attempt to Put a record that does not validate.
	ErrCorrupt = errors.New("catalog: invalid record")
	// ErrUnsupportedVersion is returned for a record written by a newer volgw.
	ErrUnsupportedVersion = errors.New("catalog: unsupported record version")

	// Returned by Open (wrapped in an *Error) and by Restore.

	// ErrDamaged: catalog.db exists but is damaged (truncated, overwritten,
	// a record that does not decode): the catalog cannot be trusted.
	ErrDamaged = errors.New("catalog: damaged")
	// ErrMissing: catalog.db is empty, or missing from a data dir that holds
	// an appliance's other state.
	ErrMissing = errors.New("catalog: missing")
	// ErrInUse: another process has the data dir open.
	ErrInUse = errors.New("catalog: data dir in use")
	// ErrExists: Restore found a catalog.db already there.
	ErrExists = errors.New("catalog: already exists")
)

// Error is what Open returns when it refuses a data dir: which sentinel
// (ErrDamaged, ErrMissing, ErrInUse), the file concerned and what is wrong
// with it, in words a user can act on.
type Error struct {
	Err    error
	Path   string // catalog.db, or the lock file for ErrInUse
	Detail string
	PID    int // ErrInUse: the process holding the data dir, 0 if unknown
}

func (e *Error) Error() string {
	switch e.Err {
	case ErrInUse:
		who := "another process"
		if e.PID > 0 {
			who = fmt.Sprintf("another process (pid %d)", e.PID)
		}
		return fmt.Sprintf("the data dir %s is in use by %s: %s", filepath.Dir(e.Path), who, e.Detail)
	case ErrMissing:
		return fmt.Sprintf("the catalog %s is missing: %s", e.Path, e.Detail)
	}
	return fmt.Sprintf("the catalog %s is damaged: %s", e.Path, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// FileName is the catalog's file inside the data dir.
const FileName = "catalog.db"

// Bucket names. One bucket per record kind; keys are chosen so that bbolt's
// byte order is a useful order (IDs, ARNs).
var (
	bucketActivationKeys = []byte("activation_keys")
	bucketGateways       = []byte("gateways")
	bucketDisks          = []byte("disks")
	bucketVolumes        = []byte("volumes")
	bucketChap           = []byte("chap")
	bucketTags           = []byte("tags")
	bucketSchedules      = []byte("schedules")
	bucketClientTokens   = []byte("client_tokens")
	bucketMeta           = []byte("meta") // the catalog's own counters (generation)
	allBuckets           = [][]byte{bucketActivationKeys, bucketGateways, bucketDisks, bucketVolumes, bucketChap, bucketTags, bucketSchedules, bucketClientTokens, bucketMeta}
)

// DB is an open catalog. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	lock *dirLock // held from Open to Close: one process per data dir
	// volumes is every volume record as decoded by the last read-only
	// transaction that listed them, with that transaction's ID (the ID of
	// the write that made the state it saw). A read-only transaction of the
	// same ID sees the same records, so it takes these instead of decoding
	// them again: ListVolumeRecoveryPoints and the other listings run on
	// every dashboard poll, and under write load the decoding was half of
	// their CPU (BENCHMARKS.md, "Control plane under load").
	volumes atomic.Pointer[volumeList]
}

// volumeList is DB.volumes: never modified once stored.
type volumeList struct {
	txid int
	vols []Volume
}

// Options tune Open.
type Options struct {
	// StateEntries are the names of the other entries volgw keeps in the
	// data dir (engine state, disks, credentials...). If any of them exists,
	// the data dir is not new: a missing catalog.db is then refused with
	// ErrMissing instead of being created empty, which would start the
	// appliance silently without its gateway and volumes.
	StateEntries []string
}

// Open opens the catalog in dataDir with no Options.
func Open(dataDir string) (*DB, error) { return OpenWith(dataDir, Options{}) }

// OpenWith opens the catalog in dataDir, creating it only in a new data
// dir. It first takes the data dir's lock (ErrInUse if another process
// holds it), then refuses, with an *Error naming the file, a catalog.db that
// is empty or missing from a data dir that is not new (ErrMissing) and one
// that is damaged in any way it can detect (ErrDamaged): see verifyFile and
// verifyRecords. It never panics on a damaged file and never starts from an
// older state than the last committed one.
func OpenWith(dataDir string, o Options) (db *DB, err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("catalog: create data dir: %w", err)
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.release()
		}
	}()
	path := filepath.Join(dataDir, FileName)
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		for _, name := range o.StateEntries {
			if _, serr := os.Lstat(filepath.Join(dataDir, name)); serr == nil {
				return nil, &Error{Err: ErrMissing, Path: path,
					Detail: fmt.Sprintf("it does not exist, but the data dir holds %s, so an appliance ran here; "+
						"an empty catalog would start it without its gateway and volumes", name)}
			}
		}
		if err := create(path, Contents{}); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("catalog: %w", err)
	case st.Size() == 0:
		// create never leaves an empty file behind (it renames a complete
		// one into place), so an empty catalog.db is always damage.
		return nil, &Error{Err: ErrMissing, Path: path, Detail: "it is empty (0 bytes)"}
	}
	if err := verifyFile(path); err != nil {
		return nil, err
	}
	b, err := openVerified(path)
	if err != nil {
		return nil, err
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("catalog: create buckets: %w", err)
	}
	return &DB{bolt: b, lock: lock}, nil
}

// create writes a new catalog holding c at path, atomically: it is built
// under a temporary name, synced, and renamed into place, so that a crash
// leaves either no catalog.db or a complete one, never an empty or
// half-initialised file that a later start could mistake for a new
// appliance.
func create(path string, c Contents) error {
	tmp := path + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("catalog: %w", err)
	}
	b, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("catalog: create %s: %w", tmp, err)
	}
	err = b.Update(func(btx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := btx.CreateBucket(name); err != nil {
				return err
			}
		}
		tx := &Tx{tx: btx}
		if err := tx.putContents(c); err != nil {
			return err
		}
		return tx.Check()
	})
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("catalog: create %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("catalog: sync %s: %w", dir, err)
	}
	return nil
}

// Close closes the file and releases the data dir. No transaction may be
// running. Closing twice is harmless.
func (db *DB) Close() error {
	err := db.bolt.Close()
	db.lock.release()
	return err
}

// View runs fn in a read-only transaction. Many may run at once, and
// alongside one Update; each sees a consistent snapshot.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx, db: db}) })
}

// Update runs fn in the one read-write transaction. If fn returns an error
// nothing it wrote is kept; if Update returns nil everything is on disk.
func (db *DB) Update(fn func(*Tx) error) error {
	return db.bolt.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx, db: db}) })
}

// Tx is one transaction; see DB.View and DB.Update for its rules.
type Tx struct {
	tx *bolt.Tx
	db *DB // nil for a transaction on a catalog not opened with Open
}

// record is what every stored kind implements.
type record interface {
	// check validates the record's fields, including its version.
	check() error
}

func checkVersion(v int) error {
	switch {
	case v == currentVersion:
		return nil
	case v > currentVersion:
		return fmt.Errorf("%w: %d (this volgw knows %d)", ErrUnsupportedVersion, v, currentVersion)
	default:
		return fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
}

// currentVersion is the version every record kind is written with. Bump it
// per kind (and teach check to upgrade) when a record's meaning changes.
const currentVersion = 1

// RecordVersion is the version of the records this volgw writes. A copy of
// the catalog kept elsewhere carries it, so that records written by a newer
// volgw are refused rather than misread.
const RecordVersion = currentVersion

func get[T any, P interface {
	*T
	record
}](tx *Tx, bucket []byte, key string) (T, error) {
	var zero T
	raw := tx.tx.Bucket(bucket).Get([]byte(key))
	if raw == nil {
		return zero, fmt.Errorf("%s %q: %w", bucket, key, ErrNotFound)
	}
	return decode[T, P](bucket, []byte(key), raw)
}

func decode[T any, P interface {
	*T
	record
}](bucket, key, raw []byte) (T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("%s %q: %w: %v", bucket, key, ErrCorrupt, err)
	}
	if err := P(&v).check(); err != nil {
		var zero T
		return zero, fmt.Errorf("%s %q: %w", bucket, key, err)
	}
	return v, nil
}

func list[T any, P interface {
	*T
	record
}](tx *Tx, bucket []byte, prefix string) ([]T, error) {
	var out []T
	c := tx.tx.Bucket(bucket).Cursor()
	p := []byte(prefix)
	for k, raw := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, raw = c.Next() {
		v, err := decode[T, P](bucket, k, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func put(tx *Tx, bucket []byte, key string, r record) error {
	if err := r.check(); err != nil {
		return fmt.Errorf("put %s %q: %w", bucket, key, err)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put %s %q: %w", bucket, key, err)
	}
	return tx.tx.Bucket(bucket).Put([]byte(key), raw)
}

func del(tx *Tx, bucket []byte, key string) error {
	return tx.tx.Bucket(bucket).Delete([]byte(key))
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
