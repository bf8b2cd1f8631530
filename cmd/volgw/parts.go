package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/scsi"
	"github.com/volgw/volgw/internal/volume"
)

// productionParts are the block engine (internal/volume) and the iSCSI
// target (internal/iscsi) that `volgw serve` runs, and that the end-to-end
// tests run too.
var productionParts = parts{openEngine: openVolumeEngine, newExporter: newISCSIExporter}

// engineGCInterval is how often the engine's garbage collector runs.
const engineGCInterval = 15 * time.Minute

// openVolumeEngine opens the block engine in <data-dir>/engine over store.
func openVolumeEngine(ctx context.Context, dataDir string, store blob.Store, log *slog.Logger) (openedEngine, error) {
	e, err := volume.Open(ctx, volume.Config{
		Dir:        filepath.Join(dataDir, "engine"),
		Store:      store,
		GCInterval: engineGCInterval,
		Logger:     log,
	})
	if err != nil {
		return openedEngine{}, err
	}
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
	}, nil
}
