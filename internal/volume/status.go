package volume

import (
	"context"
	"fmt"

	"github.com/volgw/volgw/internal/control"
)

var _ control.VolumeStatusReporter = (*Engine)(nil)

// VolumeStatus implements control.VolumeStatusReporter. In order of
// precedence:
//
//   - IRRECOVERABLE: another gateway holds the volume's head (fenced), or
//     Open found writes acknowledged by a flush missing from the upload
//     buffer (ledger.go). Reads serve the recovery point; writes are
//     refused. Until the volume is deleted.
//   - PASS THROUGH: a cache disk failed, or the cache was reset and no
//     cache disk added since (cachereset.go): I/O is refused. Or Open found the upload buffer damaged and the volume may
//     have lost writes no flush is known to have acknowledged. Until a cut
//     made after the damage is published.
//   - BOOTSTRAPPING: after an unclean stop, until a cut covering everything
//     replayed from the journal is published; Progress is the share of
//     that cut's blocks uploaded.
//   - RESTORING: created from a snapshot or a clone, until every block of
//     the source has been fetched and verified once (restore.go);
//     Progress is the share done.
//   - AVAILABLE otherwise.
func (e *Engine) VolumeStatus(ctx context.Context, volumeID string) (control.VolumeCondition, error) {
	v, err := e.Volume(volumeID)
	if err != nil {
		return control.VolumeCondition{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.deleted {
		return control.VolumeCondition{}, fmt.Errorf("%w: %s", control.ErrVolumeNotFound, volumeID)
	}
	return v.conditionLocked(), nil
}

// conditionLocked: v.mu held.
func (v *Volume) conditionLocked() control.VolumeCondition {
	// A fenced volume (fence.go: another writer holds its head) is
	// IRRECOVERABLE: this gateway can no longer publish what it holds.
	if v.fenced != nil {
		return control.VolumeCondition{Status: control.VolumeIrrecoverable, Reason: fmt.Sprintf(
			"%v; this gateway no longer writes, snapshots or clones it: its reads still serve what this data dir holds, so copy that off over iSCSI if you need it, then delete the volume on this gateway (the other writer's data is untouched)", v.fenced)}
	}
	// A failed or reset cache (cachereset.go): AWS documents no status for
	// it; PASS THROUGH ("data maintained locally is out of sync", resolved
	// by adding capacity) is the closest, and unlike IRRECOVERABLE it does
	// not advise deleting the volume, which here would lose the writes the
	// upload buffer still holds for it.
	if d := v.e.cacheDown.Load(); d != nil {
		return control.VolumeCondition{Status: control.VolumePassThrough, Reason: d.err.Error()}
	}
	if c := v.cond; v.damaged() {
		reason := c.Reason
		if c.Status == control.VolumeIrrecoverable {
			reason += "; to recover: create a snapshot from the volume's recovery point (or clone the volume), create a volume from it, then delete this one"
		}
		return control.VolumeCondition{Status: c.Status, Reason: reason}
	}
	if v.bootstrapLSN > 0 && v.base.JournalLSN < v.bootstrapLSN {
		p := 0.0
		if v.cut != nil && v.cut.lsn >= v.bootstrapLSN {
			if total := v.cutTotal.Load(); total > 0 {
				p = min(99, 100*float64(v.cutDone.Load())/float64(total))
			}
		}
		return control.VolumeCondition{Status: control.VolumeBootstrapping, Progress: &p,
			Reason: fmt.Sprintf("uploading %d blocks replayed from the upload buffer after an unclean stop", v.bootstrapBlocks)}
	}
	if r := v.restore; r != nil && !r.finished.Load() {
		p := r.progress()
		return control.VolumeCondition{Status: control.VolumeRestoring, Progress: &p,
			Reason: "fetching and verifying the source's blocks from the object store"}
	}
	return control.VolumeCondition{Status: control.VolumeAvailable}
}
