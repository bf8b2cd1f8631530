package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/volgw/volgw/internal/catalog"
)

// Cached volume size limits (AWS Storage Gateway quotas).
const (
	MinVolumeSize = 1 << 30
	MaxVolumeSize = 32 << 40
)

// SectorSize is the volume's logical block: a volume is a whole number of
// them.
const SectorSize = 512

// VolumeTypeCached is the VolumeType of every volgw volume.
const VolumeTypeCached = "CACHED iSCSI"

// MaxVolumesPerGateway is AWS's quota of volumes on one cached gateway.
const MaxVolumesPerGateway = 32

// volumeLUN is the LUN every volume has in its own target.
const volumeLUN = 0

func iqnOf(v catalog.Volume) string { return IQNPrefix + v.TargetName }

// volumeTx looks a volume up by ARN for an operation of a client: its
// gateway must be running (runningGatewayTx). A malformed ARN, one of
// another gateway than the ARN's, or of no volume is VolumeNotFound.
// A volume that is not attached (DETACHED, or being moved: attach.go)
// is VolumeNotReady.
func (s *Service) volumeTx(tx *catalog.Tx, arn string) (catalog.Volume, catalog.Gateway, error) {
	v, g, err := s.findVolumeTx(tx, arn, s.runningGatewayTx)
	if err == nil && v.Attachment != "" {
		return v, g, &Error{Code: CodeVolumeNotReady, Message: "The specified volume is not ready: it is " + v.Attachment + "."}
	}
	return v, g, err
}

// anyVolumeTx is volumeTx whatever the gateway's state, for the control
// plane's own walks over its records (schedules).
func (s *Service) anyVolumeTx(tx *catalog.Tx, arn string) (catalog.Volume, catalog.Gateway, error) {
	return s.findVolumeTx(tx, arn, s.gatewayTx)
}

func (s *Service) findVolumeTx(tx *catalog.Tx, arn string, gatewayTx func(*catalog.Tx, string) (catalog.Gateway, error)) (catalog.Volume, catalog.Gateway, error) {
	gwARN, volID, ok := parseVolumeARN(arn)
	if !ok {
		return catalog.Volume{}, catalog.Gateway{}, newError(CodeVolumeNotFound)
	}
	g, err := gatewayTx(tx, gwARN)
	if err != nil {
		return catalog.Volume{}, catalog.Gateway{}, err
	}
	v, err := tx.Volume(volID)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && v.ARN != arn) {
		return catalog.Volume{}, catalog.Gateway{}, newError(CodeVolumeNotFound)
	}
	return v, g, err
}

// volumesOf lists the volumes attached to a gateway, by ARN.
func volumesOf(tx *catalog.Tx, gatewayID string) ([]catalog.Volume, error) {
	all, err := allVolumesOf(tx, gatewayID)
	return slices.DeleteFunc(all, func(v catalog.Volume) bool { return v.Attachment != "" }), err
}

// allVolumesOf lists a gateway's volumes, attached or not, by ARN.
func allVolumesOf(tx *catalog.Tx, gatewayID string) ([]catalog.Volume, error) {
	all, err := tx.Volumes()
	if err != nil {
		return nil, err
	}
	var out []catalog.Volume
	for _, v := range all {
		if v.GatewayID == gatewayID {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ARN < out[j].ARN })
	return out, nil
}

// export puts a volume's target on the wire with its current CHAP secrets.
func (s *Service) export(ctx context.Context, v catalog.Volume) error {
	var creds []catalog.ChapCredential
	if err := s.view(func(tx *catalog.Tx) error {
		var err error
		creds, err = tx.ChapCredentials(v.TargetARN)
		return err
	}); err != nil {
		return err
	}
	spec := ExportSpec{VolumeID: v.ID, IQN: iqnOf(v), LUN: uint64(v.LUN)}
	for _, c := range creds {
		spec.CHAP = append(spec.CHAP, CHAPSecret{
			InitiatorName: c.InitiatorName, SecretToAuthenticateInitiator: c.SecretToAuthenticateInitiator,
			SecretToAuthenticateTarget: c.SecretToAuthenticateTarget,
		})
	}
	return s.exporter.Export(ctx, spec)
}

// CreateCachediSCSIVolumeInput is CreateCachediSCSIVolume's input.
type CreateCachediSCSIVolumeInput struct {
	GatewayARN         string
	VolumeSizeInBytes  int64
	SnapshotID         string
	TargetName         string
	SourceVolumeARN    string
	NetworkInterfaceID string
	ClientToken        string
	KMSEncrypted       bool
	KMSKey             string
	Tags               []Tag
}

func (in CreateCachediSCSIVolumeInput) digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%s\x00%s\x00%s\x00%s\x00%t\x00%s", in.VolumeSizeInBytes, in.SnapshotID, in.TargetName,
		in.SourceVolumeARN, in.NetworkInterfaceID, in.KMSEncrypted, in.KMSKey)
	return hex.EncodeToString(h.Sum(nil))
}

// CreateCachediSCSIVolume creates a volume (empty, from a snapshot, or a
// clone of another volume's recovery point) and exports it as LUN 0 of its
// own target. A retry with the same ClientToken returns the same volume.
func (s *Service) CreateCachediSCSIVolume(ctx context.Context, in CreateCachediSCSIVolumeInput) (volumeARN, targetARN string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	var g catalog.Gateway
	var source VolumeSource
	var sourceSize int64
	// sourceKey is the key the source's data is sealed with ("" when it
	// is not encrypted); sourceWhat names the source for a message.
	var sourceKey, sourceWhat string
	scope := "CreateCachediSCSIVolume/"
	err = s.view(func(tx *catalog.Tx) error {
		var err error
		if g, err = s.runningGatewayTx(tx, in.GatewayARN); err != nil {
			return err
		}
		scope += g.ID
		if in.ClientToken != "" {
			ct, err := tx.ClientToken(scope, in.ClientToken)
			if err == nil {
				if ct.RequestDigest != in.digest() {
					return invalidParameters("The ClientToken has already been used with different parameters.")
				}
				v, err := tx.Volume(volumeIDOf(ct.ResultARN))
				if err != nil {
					return err
				}
				volumeARN, targetARN = v.ARN, v.TargetARN
				return nil
			} else if !errors.Is(err, catalog.ErrNotFound) {
				return err
			}
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
		if in.VolumeSizeInBytes < MinVolumeSize || in.VolumeSizeInBytes > MaxVolumeSize {
			return errVolumeSize
		}
		if in.VolumeSizeInBytes%SectorSize != 0 {
			return errVolumeSizeSectors
		}
		if err := checkKMSParameters(in.KMSEncrypted, in.KMSKey); err != nil {
			return err
		}
		if in.NetworkInterfaceID != s.iscsiAddress {
			return invalidParameters("The specified network interface is not a network interface of the gateway.")
		}
		vols, err := volumesOf(tx, g.ID)
		if err != nil {
			return err
		}
		for _, v := range vols {
			if v.TargetName == in.TargetName {
				return newError(CodeTargetAlreadyExists)
			}
		}
		if len(vols) >= MaxVolumesPerGateway {
			return newError(CodeMaximumVolumeCount)
		}
		switch {
		case in.SnapshotID != "" && in.SourceVolumeARN != "":
			return invalidParameters("Specify either SnapshotId or SourceVolumeARN, not both.")
		case in.SourceVolumeARN != "":
			src, _, err := s.volumeTx(tx, in.SourceVolumeARN)
			if err != nil {
				return err
			}
			source.SourceVolumeID, sourceSize = src.ID, src.SizeBytes
			sourceKey, sourceWhat = src.KMSKey, "The source volume "+src.ID
		case in.SnapshotID != "":
			source.SnapshotID = in.SnapshotID
		}
		return checkTags(in.Tags)
	})
	if err != nil || volumeARN != "" {
		return volumeARN, targetARN, err
	}
	if source.SnapshotID != "" {
		snap, err := s.engine.Snapshot(ctx, source.SnapshotID)
		if err != nil {
			return "", "", engineError(err)
		}
		sourceSize = snap.VolumeSizeBytes
		sourceKey, sourceWhat = snap.KMSKey, "The snapshot "+snap.ID
	}
	if in.VolumeSizeInBytes < sourceSize {
		return "", "", errVolumeTooSmall
	}
	key, err := s.volumeKey(in.KMSKey, sourceKey, sourceWhat)
	if err != nil {
		return "", "", err
	}

	id, err := s.ids.volumeID()
	if err != nil {
		return "", "", err
	}
	now := s.now()
	v := catalog.Volume{
		ID: id, ARN: g.ARN + "/volume/" + id, GatewayID: g.ID, SizeBytes: in.VolumeSizeInBytes,
		TargetName: in.TargetName, TargetARN: g.ARN + "/target/" + IQNPrefix + in.TargetName,
		NetworkInterfaceID: in.NetworkInterfaceID, LUN: volumeLUN, CreatedAt: now,
		SourceSnapshotID: in.SnapshotID, SourceVolumeARN: in.SourceVolumeARN,
		KMSEncrypted: key != "", KMSKey: key,
	}
	// Outside-in: engine, then the wire, then the catalog names it.
	if err := s.engine.CreateVolume(ctx, VolumeSpec{VolumeID: id, SizeBytes: v.SizeBytes, Source: source, KMSKey: key}); err != nil {
		if source.SourceVolumeID != "" && (errors.Is(err, ErrVolumeNotFound) || errors.Is(err, ErrVolumeNotReady)) {
			// The catalog names the source: an engine that does not
			// hold it, or refuses it, has a source that is not ready.
			return "", "", s.notReady(ctx, source.SourceVolumeID, err)
		}
		if mapped := engineError(err); mapped != err {
			return "", "", mapped
		}
		return "", "", fmt.Errorf("control: engine create %s: %w", id, err)
	}
	undo := func() {
		if err := s.exporter.Unexport(ctx, iqnOf(v)); err != nil {
			s.log.Warn("create volume: undo export", "volume", id, "err", err)
		}
		if err := s.engine.DeleteVolume(ctx, id); err != nil {
			s.log.Warn("create volume: undo engine create", "volume", id, "err", err)
		}
	}
	if err := s.export(ctx, v); err != nil {
		undo()
		return "", "", fmt.Errorf("control: export %s: %w", id, err)
	}
	err = s.update(func(tx *catalog.Tx) error {
		if _, err := tx.Volume(v.ID); err == nil {
			// 68 random bits make this practically impossible; refusing
			// keeps it from ever overwriting a volume.
			return fmt.Errorf("control: volume ID %s already in use", v.ID)
		}
		if err := tx.PutVolume(v); err != nil {
			return err
		}
		if err := tx.PutTags(v.ARN, toCatalogTags(in.Tags)); err != nil {
			return err
		}
		if err := tx.PutSchedule(defaultSchedule(g, v, now)); err != nil {
			return err
		}
		if in.ClientToken == "" {
			return nil
		}
		return tx.PutClientToken(catalog.ClientToken{
			Scope: scope, Token: in.ClientToken, RequestDigest: in.digest(), ResultARN: v.ARN, CreatedAt: now,
		})
	})
	if err != nil {
		undo()
		return "", "", err
	}
	return v.ARN, v.TargetARN, nil
}

// volumeKey is the key a new volume is sealed with: the request's KMSKey
// if it gives one, otherwise the key of the snapshot or volume it is
// created from, so that data encrypted with a key stays encrypted with it
// ("" when neither has one: the engine then uses the gateway's default
// key, if any). AWS Storage Gateway says only that a volume's key cannot
// change once it is created; the rule is EBS's, whose snapshots these
// are: a volume restored from an encrypted snapshot is encrypted, with the
// snapshot's key unless the request names another (EBS User Guide,
// "Amazon EBS encryption examples" and the encryption outcomes of the EBS
// direct APIs). Both keys must be ones the gateway has: the source's to
// read its data, the new volume's to write.
func (s *Service) volumeKey(requested, sourceKey, sourceWhat string) (string, error) {
	if requested != "" && !s.hasKey(requested) {
		return "", errKeyNotFound(requested)
	}
	if sourceKey != "" && !s.hasKey(sourceKey) {
		return "", errSourceKeyUnavailable(sourceWhat, sourceKey)
	}
	if requested != "" {
		return requested, nil
	}
	return sourceKey, nil
}

func (s *Service) isVolumeARN(arn string) bool {
	gw, _, ok := parseVolumeARN(arn)
	return ok && s.isGatewayARN(gw)
}

func volumeIDOf(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

// defaultSchedule is the daily snapshot schedule a new volume gets, starting
// at the hour (in the gateway's time zone) it was created.
func defaultSchedule(g catalog.Gateway, v catalog.Volume, now time.Time) catalog.Schedule {
	return catalog.Schedule{
		VolumeARN: v.ARN, StartAt: now.In(gatewayLocation(g.Timezone)).Hour(), RecurrenceInHours: 24,
		Description: g.ID + ":" + v.ID + ":Schedule", Since: now,
	}
}

// ISCSIAttributes are a volume's target as initiators see it.
type ISCSIAttributes struct {
	TargetARN            string
	NetworkInterfaceID   string
	NetworkInterfacePort int
	LunNumber            int
	ChapEnabled          bool
}

// CachedVolume is one entry of DescribeCachediSCSIVolumes.
type CachedVolume struct {
	VolumeARN, VolumeID, VolumeType, VolumeStatus, VolumeAttachmentStatus string
	VolumeSizeInBytes                                                     int64
	// VolumeProgress is the percentage done while BOOTSTRAPPING or
	// RESTORING, as the engine reports it; nil otherwise.
	VolumeProgress *float64
	// VolumeUsedInBytes is the usage at the current recovery point; nil
	// when the engine could not say.
	VolumeUsedInBytes *int64
	SourceSnapshotID  string
	ISCSI             ISCSIAttributes
	CreatedDate       time.Time
	TargetName        string
	KMSKey            string
}

// DescribeCachediSCSIVolumes describes volumes, sorted by ARN. Any ARN that
// names no volume fails the whole call with VolumeNotFound, and a volume of
// a shut-down gateway with GatewayNotConnected (runningGatewayTx). Each
// volume's VolumeStatus and VolumeProgress are the engine's
// (volumeCondition).
func (s *Service) DescribeCachediSCSIVolumes(ctx context.Context, volumeARNs []string) ([]CachedVolume, error) {
	type found struct {
		v    catalog.Volume
		g    catalog.Gateway
		chap bool
	}
	var vols []found
	err := s.view(func(tx *catalog.Tx) error {
		seen := map[string]bool{}
		for _, arn := range volumeARNs {
			if seen[arn] {
				continue
			}
			seen[arn] = true
			v, g, err := s.findVolumeTx(tx, arn, s.runningGatewayTx)
			if err != nil {
				return err
			}
			creds, err := tx.ChapCredentials(v.TargetARN)
			if err != nil {
				return err
			}
			vols = append(vols, found{v, g, len(creds) > 0})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(vols, func(i, j int) bool { return vols[i].v.ARN < vols[j].v.ARN })
	out := []CachedVolume{}
	for _, f := range vols {
		if f.v.Attachment != "" {
			if s.movedAway(ctx, f.v) {
				return nil, newError(CodeVolumeNotFound)
			}
			out = append(out, notAttachedVolume(f.v))
			continue
		}
		cond, err := s.volumeCondition(ctx, f.v.ID)
		if err != nil {
			return nil, err
		}
		cv := CachedVolume{
			VolumeARN: f.v.ARN, VolumeID: f.v.ID, VolumeType: VolumeTypeCached, VolumeStatus: cond.Status,
			VolumeProgress:         cond.Progress,
			VolumeAttachmentStatus: attachmentStatus(f.v), VolumeSizeInBytes: f.v.SizeBytes,
			SourceSnapshotID: f.v.SourceSnapshotID, CreatedDate: f.v.CreatedAt, TargetName: f.v.TargetName,
			KMSKey: f.v.KMSKey,
			ISCSI: ISCSIAttributes{
				TargetARN: f.v.TargetARN, NetworkInterfaceID: f.v.NetworkInterfaceID,
				NetworkInterfacePort: s.iscsiPort, LunNumber: f.v.LUN, ChapEnabled: f.chap,
			},
		}
		if rp, err := s.engine.RecoveryPoint(ctx, f.v.ID); err == nil {
			used := rp.UsageBytes
			cv.VolumeUsedInBytes = &used
		} else if cond.Status == VolumeAvailable {
			s.log.Warn("describe volume: recovery point", "volume", f.v.ID, "err", err)
		}
		out = append(out, cv)
	}
	return out, nil
}

// errLocalStateLost is why a volume the catalog names and the engine does
// not hold is IRRECOVERABLE.
const errLocalStateLost = "the gateway no longer holds the volume's local state, so it cannot serve it and writes not yet uploaded are lost; create a new volume from one of its snapshots, then delete this one"

// volumeCondition is a catalog volume's condition as the engine sees it:
// the engine's VolumeStatusReporter when it has one; otherwise AVAILABLE
// for a volume the engine holds. A volume the engine does not hold (its
// local state was lost) is IRRECOVERABLE, never AVAILABLE: it is named by
// the catalog, so it is shown, and shown as what it is.
func (s *Service) volumeCondition(ctx context.Context, volumeID string) (VolumeCondition, error) {
	var cond VolumeCondition
	var err error
	if r, ok := s.engine.(VolumeStatusReporter); ok {
		cond, err = r.VolumeStatus(ctx, volumeID)
	} else {
		_, err = s.engine.RecoveryPoint(ctx, volumeID)
		cond.Status = VolumeAvailable
		if errors.Is(err, ErrVolumeNotReady) {
			cond, err = VolumeCondition{Status: VolumeIrrecoverable, Reason: err.Error()}, nil
		}
	}
	switch {
	case errors.Is(err, ErrVolumeNotFound):
		return VolumeCondition{Status: VolumeIrrecoverable, Reason: errLocalStateLost}, nil
	case err != nil:
		return VolumeCondition{}, fmt.Errorf("control: status of volume %s: %w", volumeID, err)
	}
	return cond, nil
}

// lostVolume reports whether the engine no longer holds a volume the
// catalog names (volumeCondition says why it is IRRECOVERABLE).
func (s *Service) lostVolume(ctx context.Context, volumeID string) bool {
	cond, err := s.volumeCondition(ctx, volumeID)
	return err == nil && cond.Status == VolumeIrrecoverable && cond.Reason == errLocalStateLost
}

// notReady is the API's answer for an operation on a volume the engine
// refuses (ErrVolumeNotReady) or does not hold although the catalog names
// it: VolumeNotReady, with the volume's condition in words.
func (s *Service) notReady(ctx context.Context, volumeID string, err error) error {
	if !errors.Is(err, ErrVolumeNotReady) && !errors.Is(err, ErrVolumeNotFound) {
		return engineError(err)
	}
	msg := messages[CodeVolumeNotReady]
	if cond, cerr := s.volumeCondition(ctx, volumeID); cerr == nil && cond.Status != VolumeAvailable {
		msg = "The specified volume is not ready: it is " + cond.Status
		if cond.Reason != "" {
			msg += ": " + strings.TrimSuffix(cond.Reason, ".")
		}
		msg += "."
	}
	return &Error{Code: CodeVolumeNotReady, Message: msg, Err: err}
}

// VolumeInfo is one entry of ListVolumes.
type VolumeInfo struct {
	VolumeARN, VolumeID, GatewayARN, GatewayID, VolumeType, VolumeAttachmentStatus string
	VolumeSizeInBytes                                                              int64
}

// ListVolumes lists a gateway's volumes (every gateway's when gatewayARN is
// "", as AWS lists the account's) by ARN, from marker, at most limit (0:
// 100); the returned marker is "" on the last page.
func (s *Service) ListVolumes(ctx context.Context, gatewayARN, marker string, limit int) (string, []VolumeInfo, string, error) {
	var g catalog.Gateway
	var vols []catalog.Volume
	gatewayARNs := map[string]string{} // gateway ID → ARN
	err := s.view(func(tx *catalog.Tx) error {
		var err error
		if gatewayARN == "" {
			gs, err := tx.Gateways()
			if err != nil {
				return err
			}
			for _, g := range gs {
				gatewayARNs[g.ID] = g.ARN
			}
			if vols, err = tx.Volumes(); err != nil {
				return err
			}
			sort.Slice(vols, func(i, j int) bool { return vols[i].ARN < vols[j].ARN })
			return nil
		}
		if g, err = s.runningGatewayTx(tx, gatewayARN); err != nil {
			return err
		}
		gatewayARNs[g.ID] = g.ARN
		vols, err = allVolumesOf(tx, g.ID)
		return err
	})
	if err != nil {
		return "", nil, "", err
	}
	vols = slices.DeleteFunc(vols, func(v catalog.Volume) bool { return s.movedAway(ctx, v) })
	arns := make([]string, len(vols))
	for i, v := range vols {
		arns[i] = v.ARN
	}
	from, to, next, err := page(arns, marker, limit, 100, s.isVolumeARN)
	if err != nil {
		return "", nil, "", err
	}
	out := []VolumeInfo{}
	for _, v := range vols[from:to] {
		out = append(out, VolumeInfo{
			VolumeARN: v.ARN, VolumeID: v.ID, GatewayARN: gatewayARNs[v.GatewayID], GatewayID: v.GatewayID,
			VolumeType: VolumeTypeCached, VolumeAttachmentStatus: attachmentStatus(v), VolumeSizeInBytes: v.SizeBytes,
		})
	}
	return g.ARN, out, next, nil
}

// DeleteVolume deletes a volume. Its snapshots stay.
func (s *Service) DeleteVolume(ctx context.Context, volumeARN string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v catalog.Volume
	err := s.update(func(tx *catalog.Tx) error {
		var err error
		if v, _, err = s.findVolumeTx(tx, volumeARN, s.runningGatewayTx); err != nil || v.Attachment == catalog.VolumeDetached {
			return err
		}
		if v.Attachment != "" {
			return &Error{Code: CodeVolumeNotReady, Message: "The specified volume is not ready: it is " + v.Attachment + "."}
		}
		return deleteVolumeRecords(tx, v)
	})
	if err == nil && v.Attachment == catalog.VolumeDetached {
		return s.deleteDetached(ctx, v)
	}
	if err != nil {
		return "", err
	}
	// Inside-out: the catalog no longer names it, so the volume is deleted
	// as far as the API is concerned; then the wire, then the data. A
	// failure now leaves an orphan nothing names (logged), not a volume
	// the client was told is gone but can still see.
	if err := s.exporter.Unexport(ctx, iqnOf(v)); err != nil {
		s.log.Warn("delete volume: unexport", "volume", v.ID, "err", err)
	}
	if err := s.engine.DeleteVolume(ctx, v.ID); err != nil && !errors.Is(err, ErrVolumeNotFound) {
		s.log.Warn("delete volume: engine delete", "volume", v.ID, "err", err)
	}
	return v.ARN, nil
}

// deleteVolumeRecords removes a volume and everything the catalog keeps
// about it.
func deleteVolumeRecords(tx *catalog.Tx, v catalog.Volume) error {
	if err := deleteTargetRecords(tx, v); err != nil {
		return err
	}
	if err := tx.PutTags(v.ARN, nil); err != nil {
		return err
	}
	if err := tx.DeleteClientTokensFor(v.ARN); err != nil {
		return err
	}
	return tx.DeleteVolume(v.ID)
}

// deleteTargetRecords removes what the catalog keeps about a volume being
// served here: its target's CHAP credentials and its snapshot schedule.
func deleteTargetRecords(tx *catalog.Tx, v catalog.Volume) error {
	creds, err := tx.ChapCredentials(v.TargetARN)
	if err != nil {
		return err
	}
	for _, c := range creds {
		if err := tx.DeleteChapCredential(c.TargetARN, c.InitiatorName); err != nil {
			return err
		}
	}
	if err := tx.DeleteSchedule(v.ARN); err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	return nil
}

// ListVolumeInitiators lists the initiators logged in to a volume's target.
func (s *Service) ListVolumeInitiators(ctx context.Context, volumeARN string) ([]string, error) {
	var v catalog.Volume
	err := s.view(func(tx *catalog.Tx) error {
		var err error
		v, _, err = s.volumeTx(tx, volumeARN)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := append([]string{}, s.exporter.Initiators(iqnOf(v))...)
	sort.Strings(out)
	return out, nil
}
