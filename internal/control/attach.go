package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/volgw/volgw/internal/catalog"
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
	// DeleteDetachedVolume deletes a detached volume in the store (its
	// head becomes a tombstone; GC reclaims what no snapshot uses).
	// Errors wrap ErrVolumeNotFound (already gone) or ErrVolumeInUse
	// (attached meanwhile: not deleted).
	DeleteDetachedVolume(ctx context.Context, volumeID string) error
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

// CodeVolumeInUse is the model's ErrorCode for a volume that is attached
// (to a gateway, or to an initiator's session).
const CodeVolumeInUse = "VolumeInUse"

// errVolumeInUse: AWS's wording for the code, as its other codes'.
var errVolumeInUse = &Error{Code: CodeVolumeInUse, Message: "The specified volume is in use."}

// errInitiatorsConnected: DetachVolume without ForceDetach while an
// initiator is logged in. AWS documents that the connection must then be
// closed by hand first; it publishes no wording, so the message says so.
var errInitiatorsConnected = &Error{Code: CodeVolumeInUse,
	Message: "The specified volume is in use: an iSCSI initiator is connected to its target. Disconnect it, or set ForceDetach."}

// errVolumeDetached answers an operation that needs the volume attached.
var errVolumeDetached = &Error{Code: CodeVolumeNotReady, Message: "The specified volume is not ready: it is DETACHED."}

// moveNote is what DetachVolume leaves with the volume in the object store
// (the engine keeps it opaque), so that AttachVolume on any gateway
// sharing the store gives the volume back what AWS keeps with it: its
// previous target name (TargetName is optional on AttachVolume), creation
// date, source snapshot, encryption key, tags and snapshot schedule.
type moveNote struct {
	TargetName       string
	CreatedAt        time.Time
	SourceSnapshotID string `json:",omitempty"`
	SourceVolumeARN  string `json:",omitempty"`
	// KMSKey is the key the volume is sealed with ("" when not
	// encrypted): DescribeCachediSCSIVolumes shows it wherever the volume
	// goes, and a gateway without the key does not take the volume.
	KMSKey   string `json:",omitempty"`
	Tags     []catalog.Tag
	Schedule *catalog.Schedule `json:",omitempty"`
}

func (s *Service) mover() (VolumeMover, error) {
	m, ok := s.engine.(VolumeMover)
	if !ok {
		return nil, newError(CodeNotSupported)
	}
	return m, nil
}

// moveError maps a VolumeMover's errors to the API's.
func moveError(err error) error {
	if errors.Is(err, ErrVolumeInUse) {
		return &Error{Code: errVolumeInUse.Code, Message: errVolumeInUse.Message, Err: err}
	}
	return engineError(err)
}

// DetachVolume detaches a volume from its gateway so that any gateway
// sharing the object store can attach it: the target is removed (with
// ForceDetach, logged-in initiators' sessions are withdrawn — every later
// command fails, as for any removed target (TargetExporter.Unexport) —
// rather than their connections closed, which initiators retry; without it, a
// logged-in initiator makes it VolumeInUse, as AWS requires disconnecting
// first), every write acknowledged so far is published and the volume's
// head in the store released (VolumeMover). The catalog keeps the volume
// as DETACHED under its ARN, listed by ListVolumes with
// VolumeAttachmentStatus DETACHED, until another gateway attaches it; its
// CHAP credentials go with its target and its snapshot schedule stops
// (both as on AWS); its schedule and tags travel with it to the gateway
// that attaches it. Detaching a DETACHED volume again returns its ARN (a
// retry after a lost answer). A failure leaves the volume attached and
// exported.
func (s *Service) DetachVolume(ctx context.Context, volumeARN string, force bool) (string, error) {
	m, err := s.mover()
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var v catalog.Volume
	var note moveNote
	err = s.update(func(tx *catalog.Tx) error {
		var err error
		if v, _, err = s.findVolumeTx(tx, volumeARN, s.runningGatewayTx); err != nil {
			return err
		}
		if v.Attachment == catalog.VolumeDetached {
			return nil
		}
		if v.Attachment != "" {
			return &Error{Code: CodeVolumeNotReady, Message: "The specified volume is not ready: it is " + v.Attachment + "."}
		}
		if !force && len(s.exporter.Initiators(iqnOf(v))) > 0 {
			return errInitiatorsConnected
		}
		note = moveNote{TargetName: v.TargetName, CreatedAt: v.CreatedAt, SourceSnapshotID: v.SourceSnapshotID, SourceVolumeARN: v.SourceVolumeARN, KMSKey: v.KMSKey}
		if note.Tags, err = tx.Tags(v.ARN); err != nil {
			return err
		}
		if sch, err := tx.Schedule(v.ARN); err == nil {
			note.Schedule = &sch
		} else if !errors.Is(err, catalog.ErrNotFound) {
			return err
		}
		// The intent: a crash from here on is resolved at Start by whether
		// the engine still holds the volume (resolveMoves).
		v.Attachment = catalog.VolumeDetaching
		return tx.PutVolume(v)
	})
	if err != nil {
		return "", err
	}
	if v.Attachment == catalog.VolumeDetached {
		if s.movedAway(ctx, v) {
			return "", newError(CodeVolumeNotFound) // another gateway's now
		}
		return v.ARN, nil
	}
	revert := func(cause error) error {
		uerr := s.update(func(tx *catalog.Tx) error {
			v.Attachment = ""
			return tx.PutVolume(v)
		})
		if uerr == nil {
			uerr = s.export(ctx, v)
		}
		if uerr != nil {
			s.log.Error("detach volume: putting the volume back after a failed detach", "volume", v.ID, "err", uerr)
		}
		return cause
	}
	// The target first: when Unexport returns, no I/O runs on the volume
	// (sessions of a forced detach are closed), so nothing can be written
	// after the engine's last cut.
	if err := s.exporter.Unexport(ctx, iqnOf(v)); err != nil {
		return "", revert(fmt.Errorf("control: unexport %s: %w", v.ID, err))
	}
	nb, _ := json.Marshal(note)
	if err := m.DetachVolume(ctx, v.ID, nb); err != nil {
		if errors.Is(err, ErrVolumeNotReady) {
			return "", revert(s.notReady(ctx, v.ID, err))
		}
		return "", revert(moveError(err))
	}
	err = s.update(func(tx *catalog.Tx) error { return markDetached(tx, v) })
	return v.ARN, err
}

// markDetached records a volume as DETACHED: its target, with its CHAP
// credentials, is gone and its schedule no longer runs here.
func markDetached(tx *catalog.Tx, v catalog.Volume) error {
	if err := deleteTargetRecords(tx, v); err != nil {
		return err
	}
	v.Attachment = catalog.VolumeDetached
	return tx.PutVolume(v)
}

// AttachVolumeInput is AttachVolume's input.
type AttachVolumeInput struct {
	GatewayARN, VolumeARN, TargetName, NetworkInterfaceID string
	// DiskID is for stored volumes (AWS: "only required when you are
	// attaching a stored volume"); a cached volume has no local disk, so
	// it plays no part.
	DiskID string
}

// AttachVolume attaches a detached volume (detached by this gateway or by
// any other sharing the object store) to the gateway and exports it as
// LUN 0 of target TargetName (by default the target name it had) on
// NetworkInterfaceId. The volume's ARN is the new gateway's; it keeps its
// ID, size, creation date, source snapshot, tags and schedule. Errors as
// AWS: VolumeNotFound for a volume the store does not hold, VolumeInUse for
// one attached to a gateway, TargetAlreadyExists for a target name in use
// here. Of two gateways attaching the same volume at once exactly one
// succeeds.
func (s *Service) AttachVolume(ctx context.Context, in AttachVolumeInput) (volumeARN, targetARN string, err error) {
	m, err := s.mover()
	if err != nil {
		return "", "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, volID, ok := parseVolumeARN(in.VolumeARN)
	if !ok {
		return "", "", newError(CodeVolumeNotFound)
	}
	var g catalog.Gateway
	var prev *catalog.Volume // this gateway's DETACHED record of it
	err = s.view(func(tx *catalog.Tx) error {
		var err error
		if g, err = s.runningGatewayTx(tx, in.GatewayARN); err != nil {
			return err
		}
		if in.NetworkInterfaceID != s.iscsiAddress {
			return invalidParameters("The specified network interface is not a network interface of the gateway.")
		}
		if v, err := tx.Volume(volID); err == nil {
			if v.Attachment != catalog.VolumeDetached {
				return errVolumeInUse
			}
			prev = &v
		} else if !errors.Is(err, catalog.ErrNotFound) {
			return err
		}
		cache, err := disksFor(tx, catalog.DiskCache)
		if err != nil {
			return err
		}
		buffer, err := disksFor(tx, catalog.DiskUploadBuffer)
		if err != nil {
			return err
		}
		if len(cache) == 0 || len(buffer) == 0 {
			return errNoDisks
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	d, err := m.DetachedVolume(ctx, volID)
	var note moveNote
	if errors.Is(err, ErrKeyUnavailable) && json.Unmarshal(d.Note, &note) == nil && note.KMSKey != "" {
		return "", "", errSourceKeyUnavailable("The volume "+volID, note.KMSKey)
	}
	if err != nil {
		return "", "", moveError(err)
	}
	if len(d.Note) > 0 {
		if err := json.Unmarshal(d.Note, &note); err != nil {
			s.log.Warn("attach volume: the detached volume's note is unreadable; attaching without it", "volume", volID, "err", err)
		}
	}
	targetName := in.TargetName
	if targetName == "" {
		targetName = note.TargetName
	}
	if targetName == "" {
		return "", "", invalidParameters("TargetName is required: the volume has no previous target name.")
	}
	if note.KMSKey != "" && !s.hasKey(note.KMSKey) {
		// Refused before its head is taken: the volume stays detached,
		// for a gateway that has the key.
		return "", "", errSourceKeyUnavailable("The volume "+volID, note.KMSKey)
	}
	now := s.now()
	v := catalog.Volume{
		ID: volID, ARN: g.ARN + "/volume/" + volID, GatewayID: g.ID, SizeBytes: d.SizeBytes,
		TargetName: targetName, TargetARN: g.ARN + "/target/" + IQNPrefix + targetName,
		NetworkInterfaceID: in.NetworkInterfaceID, LUN: volumeLUN, CreatedAt: note.CreatedAt,
		SourceSnapshotID: note.SourceSnapshotID, SourceVolumeARN: note.SourceVolumeARN,
		KMSEncrypted: note.KMSKey != "", KMSKey: note.KMSKey, Attachment: catalog.VolumeAttaching,
	}
	if v.CreatedAt.IsZero() {
		v.CreatedAt = now
	}
	sch := defaultSchedule(g, v, now)
	if note.Schedule != nil {
		sch = *note.Schedule
		sch.VolumeARN, sch.Since, sch.LastTaken = v.ARN, now, time.Time{}
	}
	// The catalog names the volume first (ATTACHING): Start never takes an
	// engine volume no record names for an orphan to delete, and resolves
	// an attach a crash interrupted by whether the engine holds it.
	err = s.update(func(tx *catalog.Tx) error {
		vols, err := volumesOf(tx, g.ID)
		if err != nil {
			return err
		}
		for _, o := range vols {
			if o.TargetName == targetName {
				return newError(CodeTargetAlreadyExists)
			}
		}
		if len(vols) >= MaxVolumesPerGateway {
			return newError(CodeMaximumVolumeCount)
		}
		if prev != nil && prev.ARN != v.ARN {
			if err := deleteVolumeRecords(tx, *prev); err != nil {
				return err
			}
		}
		if err := tx.PutVolume(v); err != nil {
			return err
		}
		if err := tx.PutTags(v.ARN, note.Tags); err != nil {
			return err
		}
		return tx.PutSchedule(sch)
	})
	if err != nil {
		return "", "", err
	}
	if _, err := m.AttachVolume(ctx, volID); err != nil {
		if uerr := s.update(func(tx *catalog.Tx) error { return undoAttach(tx, v, prev, note.Tags) }); uerr != nil {
			s.log.Error("attach volume: undoing the catalog record of a failed attach", "volume", volID, "err", uerr)
		}
		return "", "", moveError(err)
	}
	if err := s.export(ctx, v); err != nil {
		// The engine holds the volume: it stays attached; StartGateway or
		// a restart exports it again.
		s.log.Error("attach volume: export", "volume", volID, "err", err)
	}
	v.Attachment = ""
	if err := s.update(func(tx *catalog.Tx) error { return tx.PutVolume(v) }); err != nil {
		return "", "", err
	}
	return v.ARN, v.TargetARN, nil
}

// undoAttach removes the ATTACHING record of an attach the engine refused,
// giving back this gateway's DETACHED record (and its tags) if there was
// one.
func undoAttach(tx *catalog.Tx, v catalog.Volume, prev *catalog.Volume, tags []catalog.Tag) error {
	if err := deleteVolumeRecords(tx, v); err != nil {
		return err
	}
	if prev == nil {
		return nil
	}
	if err := tx.PutVolume(*prev); err != nil {
		return err
	}
	return tx.PutTags(prev.ARN, tags)
}

// resolveMoves, at Start, finishes what a crash interrupted between a
// DetachVolume's or AttachVolume's catalog writes, by whether the engine
// holds the volume: an ATTACHING volume it holds was attached, one it
// does not is still DETACHED (and attachable); a DETACHING volume it holds
// was not detached (it stays attached, with every acknowledged write), one
// it does not is DETACHED. Returns the catalog's volumes as resolved.
func (s *Service) resolveMoves(ctx context.Context, volumes []catalog.Volume) ([]catalog.Volume, error) {
	l, ok := s.engine.(VolumeLister)
	if !ok {
		return volumes, nil
	}
	local, err := l.LocalVolumes(ctx)
	if err != nil {
		return nil, fmt.Errorf("control: start: listing the engine's volumes: %w", err)
	}
	held := map[string]bool{}
	for _, id := range local {
		held[id] = true
	}
	out := volumes[:0:0]
	for _, v := range volumes {
		if v.Attachment == catalog.VolumeAttaching || v.Attachment == catalog.VolumeDetaching {
			was := v.Attachment
			err := s.cat.Update(func(tx *catalog.Tx) error {
				if held[v.ID] {
					v.Attachment = ""
					return tx.PutVolume(v)
				}
				return markDetached(tx, v)
			})
			if err != nil {
				return nil, fmt.Errorf("control: start: resolving %s volume %s: %w", was, v.ID, err)
			}
			s.log.Warn("start: resolved a volume move a stop interrupted", "volume", v.ID, "was", was, "now", attachmentStatus(v))
		}
		out = append(out, v)
	}
	return out, nil
}

// attachmentStatus is a volume's VolumeAttachmentStatus.
func attachmentStatus(v catalog.Volume) string {
	if v.Attachment == "" {
		return "ATTACHED"
	}
	return v.Attachment
}

// movedAway reports whether a DETACHED record is stale: another gateway
// has attached the volume since (or it was deleted), so AWS would no
// longer list it under this gateway's ARN.
func (s *Service) movedAway(ctx context.Context, v catalog.Volume) bool {
	if v.Attachment != catalog.VolumeDetached {
		return false
	}
	m, ok := s.engine.(VolumeMover)
	if !ok {
		return false
	}
	_, err := m.DetachedVolume(ctx, v.ID)
	return errors.Is(err, ErrVolumeInUse) || errors.Is(err, ErrVolumeNotFound)
}

// notAttachedVolume is DescribeCachediSCSIVolumes' entry for a volume this
// gateway does not serve (DETACHED, or a move in progress): no target, so
// no VolumeiSCSIAttributes; TargetName is the one AttachVolume reuses by
// default. AWS documents no VolumeStatus for a detached volume; its data
// is whole in the store, so it is AVAILABLE (VolumeAttachmentStatus says
// where).
func notAttachedVolume(v catalog.Volume) CachedVolume {
	return CachedVolume{
		VolumeARN: v.ARN, VolumeID: v.ID, VolumeType: VolumeTypeCached, VolumeStatus: VolumeAvailable,
		VolumeAttachmentStatus: attachmentStatus(v), VolumeSizeInBytes: v.SizeBytes,
		SourceSnapshotID: v.SourceSnapshotID, CreatedDate: v.CreatedAt, TargetName: v.TargetName, KMSKey: v.KMSKey,
	}
}

// deleteDetached is DeleteVolume of a DETACHED volume: as on AWS the volume
// is deleted (in the store, so no gateway can attach it any more), not only
// forgotten here. One attached elsewhere meanwhile is not this gateway's to
// delete: its stale record goes and the answer is VolumeNotFound.
func (s *Service) deleteDetached(ctx context.Context, v catalog.Volume) (string, error) {
	m, err := s.mover()
	if err != nil {
		return "", err
	}
	err = m.DeleteDetachedVolume(ctx, v.ID)
	inUse := errors.Is(err, ErrVolumeInUse)
	if err != nil && !inUse && !errors.Is(err, ErrVolumeNotFound) {
		return "", engineError(err)
	}
	if uerr := s.update(func(tx *catalog.Tx) error { return deleteVolumeRecords(tx, v) }); uerr != nil {
		return "", uerr
	}
	if inUse {
		return "", newError(CodeVolumeNotFound)
	}
	return v.ARN, nil
}
