package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/scsi"
	"github.com/volgw/volgw/internal/seal"
	"github.com/volgw/volgw/internal/volume"
)

// productionParts are the block engine (internal/volume) and the iSCSI
// target (internal/iscsi) that `volgw serve` runs, and that the end-to-end
// tests run too.
var productionParts = parts{openEngine: openVolumeEngine, newExporter: newISCSIExporter}

// engineOptions are the serve flags the block engine takes.
type engineOptions struct {
	DataDir                string
	RecoveryPointRetention time.Duration // --recovery-point-retention
	Keys                   *seal.Keyring // --encryption-keys
	Compress               bool          // --compress
	WholeBlocks            bool          // --whole-blocks
	GCGrace                time.Duration // --gc-grace
	GCInterval             time.Duration // --gc-interval
}

// openVolumeEngine opens the block engine in <data-dir>/engine over store.
func openVolumeEngine(ctx context.Context, eo engineOptions, store blob.Store, log *slog.Logger) (openedEngine, error) {
	e, err := volume.Open(ctx, engineConfig(eo, store, log))
	if err != nil {
		return openedEngine{}, err
	}
	return wrapEngine(e), nil
}

// engineConfig is the engine's configuration as volgw serve runs it.
func engineConfig(eo engineOptions, store blob.Store, log *slog.Logger) volume.Config {
	return volume.Config{
		Dir:                    filepath.Join(eo.DataDir, "engine"),
		Store:                  store,
		GCGrace:                eo.GCGrace,
		GCInterval:             eo.GCInterval,
		Logger:                 log,
		RecoveryPointRetention: eo.RecoveryPointRetention,
		Keys:                   eo.Keys,
		Compress:               eo.Compress,
		WholeBlocks:            eo.WholeBlocks,
	}
}

// wrapEngine is an open engine as main wires it.
func wrapEngine(e *volume.Engine) openedEngine {
	return openedEngine{
		Engine: e,
		Volumes: func(id string) (scsi.Backend, error) {
			v, err := e.Volume(id)
			if err != nil {
				return nil, err
			}
			return v, nil
		},
		Close:   e.Close,
		Metrics: e.Collector(),
	}
}
