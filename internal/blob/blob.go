// Package blob is volgw's view of an object store: a flat namespace of
// immutable-by-convention objects addressed by key. Implementations live in
// subpackages (fs, s3); the volume engine depends only on Store.
package blob

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations translate their provider's errors into
// these at the edge, so callers can test with errors.Is.
var (
	// ErrNotFound is returned by Get and Stat when no object has the key.
	ErrNotFound = errors.New("blob: object not found")
	// ErrPreconditionFailed is returned by Put when PutOptions.IfNoneMatch
	// or PutOptions.IfMatch does not hold.
	ErrPreconditionFailed = errors.New("blob: precondition failed")
	// ErrInvalidKey is returned by every method given a key that
	// ValidateKey rejects, before anything is read or written.
	ErrInvalidKey = errors.New("blob: invalid key")
	// ErrRange is returned by GetRange when the object is shorter than the
	// range asked for, or the range is empty or negative.
	ErrRange = errors.New("blob: range not satisfiable")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ETag    string    // opaque version tag; changes whenever the object is replaced
	ModTime time.Time // when the object was last written
}

// PutOptions makes a Put conditional. The zero value is an unconditional Put.
type PutOptions struct {
	// IfNoneMatch: write only if no object has the key (create-only).
	IfNoneMatch bool
	// IfMatch: write only if the current object's ETag equals this value.
	IfMatch string
	// SHA256, if set, is the SHA-256 of the data, for a caller that has it
	// already (content-addressed objects are named by it). A store that
	// hashes the payload anyway (S3 configured to sign payloads) uses this
	// instead of hashing again; the server checks it, so a wrong value
	// fails the Put. Other stores ignore it.
	SHA256 *[32]byte
}

// Store is an object store. All methods are safe for concurrent use.
//
// Contract every implementation keeps (the contract test suite checks it):
//   - Put is atomic: a concurrent or later Get sees either the old object or
//     the whole new one, never a prefix; once Put returns nil the object is
//     durable (fsync'd, or acknowledged by the remote store).
//   - Get of a missing key returns an error wrapping ErrNotFound.
//   - GetRange returns exactly bytes [off, off+n) of the object, or an
//     error: ErrNotFound for a missing key, ErrRange when the object does
//     not hold the whole range (n > 0, off >= 0).
//   - Delete of a missing key is not an error.
//   - List calls fn for every object whose key starts with prefix, in
//     lexical key order; an error from fn stops the walk and is returned.
//   - Keys are '/'-separated, without a leading '/'; a key ValidateKey
//     refuses fails every method with ErrInvalidKey before any I/O.
//   - ETag changes whenever the content changes (fs: on every replace).
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)
	Put(ctx context.Context, key string, data []byte, opts PutOptions) (ObjectInfo, error)
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
}
