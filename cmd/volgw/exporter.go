package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/iscsi"
	"github.com/volgw/volgw/internal/scsi"
)

// iscsiExporter is control.TargetExporter over the iSCSI target server: one
// target per volume, its LUN a SCSI block device over the engine's volume.
//
// Persistent reservations registered with APTPL live in
// <data-dir>/reservations/<volume-id>.pr (scsi.FileReservationStore), so
// they survive a restart and a ShutdownGateway/StartGateway (both are a
// power cycle of the target to SPC-4). Unexport cannot tell a shutdown
// from a deletion, so a file is removed once the engine no longer has its
// volume: swept at start and at every Export and Unexport, which
// DeleteVolume's engine delete is followed by at the latest on the next
// change or start.
type iscsiExporter struct {
	srv     *iscsi.Server
	volumes func(volumeID string) (scsi.Backend, error)
	log     *slog.Logger
	stop    context.CancelFunc
	served  chan struct{} // closed when Serve has returned
	prDir   string        // persistent reservation files, one per volume

	mu       sync.Mutex                    // guards exported and serialises changes to srv's targets
	exported map[string]control.ExportSpec // by IQN: what each target serves now

	latency *prometheus.HistogramVec // SCSI commands, by class (scsimetrics.go)
}

// newISCSIExporter starts the iSCSI target server on ln, with no targets;
// the control plane exports each volume of a running gateway at start.
func newISCSIExporter(ctx context.Context, dataDir string, ln net.Listener, volumes func(string) (scsi.Backend, error), writeBuffer int64, log *slog.Logger) (exporter, error) {
	e := &iscsiExporter{
		srv:     iscsi.NewServer(iscsi.Config{Logger: log, WriteBuffer: writeBuffer}),
		volumes: volumes, log: log, served: make(chan struct{}),
		prDir:    filepath.Join(dataDir, "reservations"),
		exported: map[string]control.ExportSpec{},
		latency:  newCommandLatency(),
	}
	if err := os.MkdirAll(e.prDir, 0o700); err != nil {
		return nil, fmt.Errorf("reservations dir: %w", err)
	}
	e.sweepReservations(true)
	// The server outlives start's ctx: it runs until Close.
	serveCtx, stop := context.WithCancel(context.Background())
	e.stop = stop
	go func() {
		defer close(e.served)
		if err := e.srv.Serve(serveCtx, ln); err != nil && !errors.Is(err, iscsi.ErrServerClosed) && serveCtx.Err() == nil {
			log.Error("iSCSI target stopped", "err", err)
		}
	}()
	return e, nil
}

// Export implements control.TargetExporter. A new CHAP list for a target
// that already serves the same volume at the same LUN closes the target's
// sessions (iscsi.Server.SetCHAP); anything else replaces the target.
func (e *iscsiExporter) Export(ctx context.Context, spec control.ExportSpec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.sweepReservations(false)
	chap := make([]iscsi.CHAPCredential, len(spec.CHAP))
	for i, c := range spec.CHAP {
		chap[i] = iscsi.CHAPCredential{InitiatorName: c.InitiatorName,
			SecretToAuthenticateInitiator: c.SecretToAuthenticateInitiator, SecretToAuthenticateTarget: c.SecretToAuthenticateTarget}
	}
	if old, ok := e.exported[spec.IQN]; ok && old.VolumeID == spec.VolumeID && old.LUN == spec.LUN {
		if err := e.srv.SetCHAP(spec.IQN, chap); err != nil {
			return fmt.Errorf("export %s: %w", spec.IQN, err)
		}
		e.exported[spec.IQN] = spec
		return nil
	}
	backend, err := e.volumes(spec.VolumeID)
	if err != nil {
		return fmt.Errorf("export %s: %w", spec.IQN, err)
	}
	prFile, err := e.reservationFile(spec.VolumeID)
	if err != nil {
		return fmt.Errorf("export %s: %w", spec.IQN, err)
	}
	dev, err := scsi.NewDevice(backend, scsi.DeviceOptions{SerialNumber: spec.VolumeID, ThinProvisioning: true, Logger: e.log,
		Reservations: scsi.FileReservationStore{Path: prFile}})
	if err != nil {
		return fmt.Errorf("export %s: %w", spec.IQN, err)
	}
	if _, ok := e.exported[spec.IQN]; ok {
		if err := e.srv.RemoveTarget(spec.IQN); err != nil && !errors.Is(err, iscsi.ErrTargetNotFound) {
			return fmt.Errorf("export %s: %w", spec.IQN, err)
		}
		delete(e.exported, spec.IQN)
	}
	err = e.srv.AddTarget(iscsi.TargetConfig{IQN: spec.IQN, LUNs: scsi.NewLUNTable(map[uint64]scsi.LogicalUnit{spec.LUN: newTimedUnit(dev, e.latency)}), CHAP: chap})
	if err != nil {
		return fmt.Errorf("export %s: %w", spec.IQN, err)
	}
	e.exported[spec.IQN] = spec
	return nil
}

// Unexport implements control.TargetExporter.
func (e *iscsiExporter) Unexport(ctx context.Context, iqn string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.sweepReservations(false)
	delete(e.exported, iqn)
	if err := e.srv.RemoveTarget(iqn); err != nil && !errors.Is(err, iscsi.ErrTargetNotFound) {
		return fmt.Errorf("unexport %s: %w", iqn, err)
	}
	return nil
}

// prSuffix names persistent reservation files.
const prSuffix = ".pr"

// reservationFile is the persistent reservation file of a volume.
func (e *iscsiExporter) reservationFile(volumeID string) (string, error) {
	if volumeID == "" || filepath.Base(volumeID) != volumeID || strings.HasPrefix(volumeID, ".") {
		return "", fmt.Errorf("volume ID %q cannot name a file", volumeID)
	}
	return filepath.Join(e.prDir, volumeID+prSuffix), nil
}

// sweepReservations removes the reservation files of volumes the engine
// no longer has (deleted ones), and, at start (atStart), the temporary
// files a crash left behind. A volume the engine cannot answer for now
// (closing) keeps its file.
func (e *iscsiExporter) sweepReservations(atStart bool) {
	entries, err := os.ReadDir(e.prDir)
	if err != nil {
		e.log.Warn("persistent reservations: list", "dir", e.prDir, "err", err)
		return
	}
	for _, de := range entries {
		name := de.Name()
		var stale bool
		if id, ok := strings.CutSuffix(name, prSuffix); ok {
			_, err := e.volumes(id)
			stale = errors.Is(err, control.ErrVolumeNotFound)
		} else {
			// A temporary file of a Save that a crash interrupted; only
			// at start, when no device is saving.
			stale = atStart && strings.Contains(name, prSuffix+".tmp")
		}
		if stale {
			if err := os.Remove(filepath.Join(e.prDir, name)); err != nil {
				e.log.Warn("persistent reservations: remove", "file", name, "err", err)
			}
		}
	}
}

// Initiators implements control.TargetExporter.
func (e *iscsiExporter) Initiators(iqn string) []string {
	return e.srv.Initiators(iqn)
}

// Close ends every session and stops the server.
func (e *iscsiExporter) Close() error {
	err := e.srv.Close()
	e.stop()
	<-e.served
	if errors.Is(err, iscsi.ErrServerClosed) {
		err = nil
	}
	return err
}
