package control

import (
	"context"
	"errors"
	"time"
)

// VolumeMover is implemented by engines that can hand a volume to another
// gateway sharing their object store (DetachVolume, AttachVolume). The
// store is the only thing the two gateways share: the detaching engine
// leaves the volume's head released ("detached") and naming its last root,
// and the attaching one takes that head with a conditional write, so at
// most one engine ever owns a volume.
type VolumeMover interface {
	// DetachVolume stops the volume taking writes, cuts and publishes
	// every write acknowledged so far (flushed or not), then releases its
	// head in the store with a conditional write: detached, naming that
	// last root and carrying note (opaque to the engine; AttachVolume
	// returns it). The local state (journal records, cache, files) is
	// then let go. The caller must have stopped I/O first (the target
	// unexported). Errors wrap ErrVolumeNotFound (no such local volume)
	// or ErrVolumeNotReady (fenced: the head is not this engine's to
	// release). A crash or a lost answer leaves the volume either still
	// attached here with every acknowledged write, or detached.
	DetachVolume(ctx context.Context, volumeID string, note []byte) error
	// DetachedVolume reads a volume's head in the store without changing
	// anything: what AttachVolume would attach. Errors wrap
	// ErrVolumeNotFound (no head, or deleted) or ErrVolumeInUse (a
	// gateway owns it).
	DetachedVolume(ctx context.Context, volumeID string) (DetachedVolume, error)
	// AttachVolume takes a detached volume's head with a conditional
	// write and opens the volume here on its last root. Of two engines
	// attaching the same volume at once exactly one wins; the other gets
	// ErrVolumeInUse. ErrVolumeExists: this engine already holds a volume
	// with that ID. A retry after an error (or a restart) finds a head
	// this engine wrote and completes the attach.
	AttachVolume(ctx context.Context, volumeID string) (DetachedVolume, error)
}

// DetachedVolume is a volume released in the object store.
type DetachedVolume struct {
	SizeBytes  int64
	DetachedAt time.Time
	// DetachedBy names the engine that released it (its owner ID).
	DetachedBy string
	// Note is what DetachVolume was given.
	Note []byte
}

// ErrVolumeInUse: the volume is attached to a gateway (this one or
// another sharing the store); the API answers errorCode VolumeInUse.
var ErrVolumeInUse = errors.New("volume in use")
