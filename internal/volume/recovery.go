package volume

import (
	"context"
	"fmt"
	"time"

	"github.com/volgw/volgw/internal/control"
)

// recoveryState is what RecoveryPoint answers for a volume, published whole
// (Volume.rp) so that asking takes no lock a writer holds: writers keep
// v.mu across journal appends, which can stall for seconds when the kernel
// throttles page-cache writeback, and a control-plane listing must not
// queue behind them.
//
// Invariant: v.rp always equals what the fields it is made of (base,
// cleanAt, fenced) say, because every change to them publishes a new
// state under the same hold of v.mu (or before the volume is shared, at
// Open and creation). A reader therefore sees the state as of some instant
// between its call and its return, as it did when it took v.mu itself.
// checkLocal verifies it.
type recoveryState struct {
	time   time.Time // the later of base.CutTime and cleanAt
	usage  int64     // base.usage()
	fenced error     // non-nil: RecoveryPoint answers it
}

// publishRecovery republishes the volume's recovery state from its fields.
// v.mu held, or the volume not yet shared.
func (v *Volume) publishRecovery() {
	v.rp.Store(v.recoveryStateLocked())
}

// recoveryStateLocked computes the recovery state; v.mu held.
func (v *Volume) recoveryStateLocked() *recoveryState {
	st := &recoveryState{time: v.recoveryTime(), fenced: v.fenced}
	// base.usage walks the root's page list: reuse the last figure while
	// the root is the same.
	if old := v.rp.Load(); old != nil && v.rpBase == v.base {
		st.usage = old.usage
	} else {
		st.usage = v.base.usage()
		v.rpBase = v.base
	}
	return st
}

// checkRecovery verifies the published recovery state; v.mu held.
func (v *Volume) checkRecovery() error {
	got, want := v.rp.Load(), &recoveryState{time: v.recoveryTime(), usage: v.base.usage(), fenced: v.fenced}
	if got == nil || !got.time.Equal(want.time) || got.usage != want.usage || got.fenced != want.fenced {
		return fmt.Errorf("volume: check: %s publishes recovery state %+v, its fields say %+v", v.id, got, want)
	}
	return nil
}

// RecoveryPoint implements control.VolumeEngine. It reports the later of
// the published root's cut time and the last time the volume was seen
// clean (nothing dirty or in flight: every write made before then is in
// that root). A brand-new volume reports its creation time (its first root
// is cut then); an idle volume's recovery point advances at each cut
// interval, when the uploader finds it clean, without writing anything.
// It reads the volume's published recovery state and takes no volume lock.
func (e *Engine) RecoveryPoint(ctx context.Context, volumeID string) (control.RecoveryPoint, error) {
	v, err := e.Volume(volumeID)
	if err != nil {
		return control.RecoveryPoint{}, err
	}
	st := v.rp.Load()
	if st == nil {
		// Not published yet: only while Open or CreateVolume sets the
		// volume up, before anyone can name it.
		v.mu.Lock()
		st = v.recoveryStateLocked()
		v.mu.Unlock()
	}
	if st.fenced != nil {
		// The head in the store is not this data dir's: it holds no
		// recovery point it could vouch for.
		return control.RecoveryPoint{}, st.fenced
	}
	return control.RecoveryPoint{Time: st.time, SizeBytes: v.size, UsageBytes: st.usage}, nil
}
