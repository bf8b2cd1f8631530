package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
)

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
	allBuckets           = [][]byte{bucketActivationKeys, bucketGateways, bucketDisks, bucketVolumes, bucketChap, bucketTags, bucketSchedules, bucketClientTokens}
)

// DB is an open catalog. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
}

// Open opens (creating if needed) the catalog in dataDir.
func Open(dataDir string) (*DB, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("catalog: create data dir: %w", err)
	}
	b, err := bolt.Open(filepath.Join(dataDir, FileName), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", filepath.Join(dataDir, FileName), err)
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
	return &DB{bolt: b}, nil
}

// Close closes the file. No transaction may be running.
func (db *DB) Close() error { return db.bolt.Close() }

// View runs fn in a read-only transaction. Many may run at once, and
// alongside one Update; each sees a consistent snapshot.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in the one read-write transaction. If fn returns an error
// nothing it wrote is kept; if Update returns nil everything is on disk.
func (db *DB) Update(fn func(*Tx) error) error {
	return db.bolt.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Tx is one transaction; see DB.View and DB.Update for its rules.
type Tx struct {
	tx *bolt.Tx
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
