package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/iscsi"
	"github.com/volgw/volgw/internal/scsi"
)

// iscsiExporter is control.TargetExporter over the iSCSI target server: one
// target per volume, its LUN a SCSI block device over the engine's volume.
type iscsiExporter struct {
	srv     *iscsi.Server
	volumes func(volumeID string) (scsi.Backend, error)
	log     *slog.Logger
	stop    context.CancelFunc
	served  chan struct{} // closed when Serve has returned

	mu       sync.Mutex                    // guards exported and serialises changes to srv's targets
	exported map[string]control.ExportSpec // by IQN: what each target serves now
}

// newISCSIExporter starts the iSCSI target server on ln, with no targets;
// the control plane exports each volume of a running gateway at start.
func newISCSIExporter(ctx context.Context, ln net.Listener, volumes func(string) (scsi.Backend, error), log *slog.Logger) (exporter, error) {
	e := &iscsiExporter{
		srv:     iscsi.NewServer(iscsi.Config{Logger: log}),
		volumes: volumes, log: log, served: make(chan struct{}),
		exported: map[string]control.ExportSpec{},
	}
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
	dev, err := scsi.NewDevice(backend, scsi.DeviceOptions{SerialNumber: spec.VolumeID, ThinProvisioning: true, Logger: e.log})
	if err != nil {
		return fmt.Errorf("export %s: %w", spec.IQN, err)
	}
	if _, ok := e.exported[spec.IQN]; ok {
		if err := e.srv.RemoveTarget(spec.IQN); err != nil && !errors.Is(err, iscsi.ErrTargetNotFound) {
			return fmt.Errorf("export %s: %w", spec.IQN, err)
		}
		delete(e.exported, spec.IQN)
	}
	err = e.srv.AddTarget(iscsi.TargetConfig{IQN: spec.IQN, LUNs: scsi.NewLUNTable(map[uint64]scsi.LogicalUnit{spec.LUN: dev}), CHAP: chap})
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
	delete(e.exported, iqn)
	if err := e.srv.RemoveTarget(iqn); err != nil && !errors.Is(err, iscsi.ErrTargetNotFound) {
		return fmt.Errorf("unexport %s: %w", iqn, err)
	}
	return nil
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
