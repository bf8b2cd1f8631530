package control

import (
	"context"
	"errors"
	"time"
)

// VolumeEngine is the block engine as the control plane sees it: it owns the
// data of every volume (cache, upload buffer, object store) and every
// snapshot's record and manifest in the object store. The control plane owns
// names, ARNs, gateways, targets, tags on gateways and volumes, and the
// catalog; it asks the engine for everything that concerns bytes.
//
// IDs are chosen by the control plane (vol-…, snap-…) and passed in.
// internal/volume implements this interface; main wires it in.
type VolumeEngine interface {
	// AddDisk hands a local disk (a file) to the engine for the given use.
	// Called at activation/AddCache/AddUploadBuffer time and again, with the
	// same arguments, on every start before any volume is used.
	AddDisk(ctx context.Context, d Disk) error

	// CreateVolume creates an empty volume, or one whose initial content is
	// a snapshot or another volume's current recovery point (spec.Source).
	CreateVolume(ctx context.Context, spec VolumeSpec) error
	// DeleteVolume removes a volume; its blocks are reclaimed by GC once no
	// snapshot references them.
	DeleteVolume(ctx context.Context, volumeID string) error
	// RecoveryPoint reports the volume's current recovery point.
	RecoveryPoint(ctx context.Context, volumeID string) (RecoveryPoint, error)

	// CreateSnapshot records a snapshot of a volume. With
	// FromRecoveryPoint it pins the current recovery point (O(1), completed
	// at once); otherwise it forces a cut now and the snapshot is pending
	// until that cut is published.
	CreateSnapshot(ctx context.Context, req SnapshotRequest) (Snapshot, error)
	// Snapshots lists every snapshot in the object store, including those
	// made by other gateways sharing the store.
	Snapshots(ctx context.Context) ([]Snapshot, error)
	// Snapshot returns one snapshot or an error wrapping ErrSnapshotNotFound.
	Snapshot(ctx context.Context, snapshotID string) (Snapshot, error)
	// SetSnapshotTags replaces a snapshot's tags.
	SetSnapshotTags(ctx context.Context, snapshotID string, tags []Tag) error
	// DeleteSnapshot removes the snapshot record; GC reclaims its blocks.
	DeleteSnapshot(ctx context.Context, snapshotID string) error
}

// Engine errors the control plane translates to API errors (engineError,
// in errors.go, is the one place that does). An engine wraps them, with %w,
// in its own errors, so that the control plane needs no import of it.
var (
	ErrVolumeNotFound   = errors.New("volume not found")
	ErrSnapshotNotFound = errors.New("snapshot not found")
	// ErrVolumeExists: a volume with the ID already exists (locally or in
	// the object store).
	ErrVolumeExists = errors.New("volume already exists")
	// ErrSnapshotExists: a snapshot with the ID already exists.
	ErrSnapshotExists = errors.New("snapshot already exists")
	// ErrInvalidVolumeSize: a volume size the engine cannot hold (out of
	// range or not a whole number of sectors).
	ErrInvalidVolumeSize = errors.New("invalid volume size")
	// ErrVolumeTooSmall: a volume smaller than the snapshot or volume it is
	// created from.
	ErrVolumeTooSmall = errors.New("volume smaller than its source")
	// ErrNoDisks: the engine has no cache or no upload-buffer disk yet.
	ErrNoDisks = errors.New("no cache or upload-buffer disk")
	// ErrVolumeNotReady: the volume exists but cannot take the operation in
	// its present condition (fenced by another writer, upload buffer lost:
	// see VolumeCondition); the API answers errorCode VolumeNotReady.
	ErrVolumeNotReady = errors.New("volume not ready")
	// ErrKeyUnavailable: the operation needs a key the gateway is not
	// configured with (an unknown KMSKey ARN, or a snapshot sealed with a
	// key missing from the keyring).
	ErrKeyUnavailable = errors.New("encryption key not available")
)

// DiskUse says what a local disk is allocated to.
type DiskUse string

const (
	DiskUseCache        DiskUse = "CACHE STORAGE"
	DiskUseUploadBuffer DiskUse = "UPLOAD BUFFER"
)

// Disk is one local disk of the appliance, backed by a (sparse) file.
type Disk struct {
	ID        string // as ListLocalDisks reports it
	Path      string
	SizeBytes int64
	Use       DiskUse
}

// VolumeSource is where a new volume's initial content comes from; at most
// one field is set.
type VolumeSource struct {
	SnapshotID     string // restore a snapshot
	SourceVolumeID string // clone another volume's current recovery point
}

// VolumeSpec describes a volume to create.
type VolumeSpec struct {
	VolumeID  string
	SizeBytes int64
	Source    VolumeSource
	// KMSKey names the key (from the gateway's keyring, see
	// internal/seal) the volume's new objects are sealed with: the ARN a
	// client passed with KMSEncrypted. Empty: the gateway's default key, or
	// none if it has no default (objects stored as they are).
	KMSKey string
}

// RecoveryPoint is the latest instant at which every write made to the
// volume before it is in the object store.
type RecoveryPoint struct {
	Time       time.Time
	SizeBytes  int64
	UsageBytes int64 // bytes of non-zero blocks at the recovery point
}

// Tag is a key/value pair.
type Tag struct{ Key, Value string }

// SnapshotStatus is EC2's snapshot state.
type SnapshotStatus string

const (
	SnapshotPending   SnapshotStatus = "pending"
	SnapshotCompleted SnapshotStatus = "completed"
	SnapshotError     SnapshotStatus = "error"
)

// SnapshotRequest asks for a snapshot.
type SnapshotRequest struct {
	SnapshotID        string
	VolumeID          string
	VolumeARN         string // recorded so that any gateway can show it
	Description       string
	Tags              []Tag
	FromRecoveryPoint bool
}

// Snapshot is a snapshot record as stored with its manifest.
type Snapshot struct {
	ID              string
	VolumeID        string
	VolumeARN       string
	VolumeSizeBytes int64
	StartTime       time.Time // when the snapshot was initiated (EC2's StartTime); never changes
	// RecoveryPointTime is the instant whose data the snapshot holds (its
	// cut); zero while pending.
	RecoveryPointTime time.Time
	Description       string
	Tags              []Tag
	Status            SnapshotStatus
	Progress          int // percent, 0..100
	// KMSKey is the key the snapshot's root is sealed with ("" when not
	// encrypted); DescribeSnapshots shows Encrypted and KmsKeyId from it.
	KMSKey string
}

// VolumeStatusReporter is implemented by engines that know more of a
// volume's condition than "it exists": DescribeCachediSCSIVolumes shows
// what it reports (VolumeStatus, VolumeProgress) and, for a volume in
// trouble, the reason is logged at ERROR by the engine when it finds it.
type VolumeStatusReporter interface {
	// VolumeStatus reports one volume's condition, or an error wrapping
	// ErrVolumeNotFound.
	VolumeStatus(ctx context.Context, volumeID string) (VolumeCondition, error)
}

// Volume statuses, as Storage Gateway names them (its VolumeStatus values).
const (
	// VolumeAvailable: serving, and uploading what it is written.
	VolumeAvailable = "AVAILABLE"
	// VolumeBootstrapping: after an unclean stop, the gateway is rebuilding
	// the volume's upload state from its upload buffer; I/O works.
	VolumeBootstrapping = "BOOTSTRAPPING"
	// VolumeRestoring: created from a snapshot and still fetching its data
	// from the store (VolumeProgress says how far); I/O works.
	VolumeRestoring = "RESTORING"
	// VolumePassThrough: the upload buffer no longer holds what the volume
	// needs (lost, damaged or full); data written since the last recovery
	// point may not reach the store.
	VolumePassThrough = "PASS THROUGH"
	// VolumeIrrecoverable: the volume cannot be served safely: acknowledged
	// data is known lost, or another gateway (or an older copy of this
	// one's data dir) has taken over its head in the store.
	VolumeIrrecoverable = "IRRECOVERABLE"
)

// VolumeCondition is a volume's status as the engine sees it.
type VolumeCondition struct {
	Status string // one of the Volume* statuses above
	// Progress is the percentage done while BOOTSTRAPPING or RESTORING;
	// nil otherwise (the API then omits VolumeProgress).
	Progress *float64
	// Reason says why a volume is not AVAILABLE, in words for a user.
	Reason string
}

// VolumeLister is implemented by engines that can list the volumes they
// hold locally. Start reconciles that list with the catalog: a volume the
// engine holds and the catalog does not name was left by a create that
// never completed (the catalog is written last) and is removed; a volume
// the catalog names and the engine does not hold has lost its local state
// and is shown IRRECOVERABLE.
type VolumeLister interface {
	LocalVolumes(ctx context.Context) ([]string, error)
}
