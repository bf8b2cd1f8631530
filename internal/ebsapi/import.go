package ebsapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/volume"
)

// Imports is what StartSnapshot, PutSnapshotBlock and CompleteSnapshot
// need of the engine (volume/snapshotimport.go).
type Imports interface {
	StartImport(ctx context.Context, req volume.ImportRequest) (control.Snapshot, error)
	ImportParent(ctx context.Context, id string) (string, error)
	PutImportBlock(ctx context.Context, id string, index int64, data []byte, sum [32]byte, progress int) error
	CompleteImport(ctx context.Context, id string, changed int, aggregate *[32]byte) (control.Snapshot, error)
}

// defaultTimeout is StartSnapshot's Timeout when none is given (EBS's).
const defaultTimeout = 60 * time.Minute

type tagJSON struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type startInput struct {
	VolumeSize       *int64    `json:"VolumeSize"`
	ParentSnapshotID string    `json:"ParentSnapshotId"`
	Tags             []tagJSON `json:"Tags"`
	Description      *string   `json:"Description"`
	ClientToken      string    `json:"ClientToken"`
	Encrypted        *bool     `json:"Encrypted"`
	KmsKeyArn        string    `json:"KmsKeyArn"`
	Timeout          *int64    `json:"Timeout"`
}

type startOutput struct {
	Description      string       `json:"Description,omitempty"`
	SnapshotID       string       `json:"SnapshotId"`
	OwnerID          string       `json:"OwnerId"`
	Status           string       `json:"Status"`
	StartTime        epochSeconds `json:"StartTime"`
	VolumeSize       int64        `json:"VolumeSize"`
	BlockSize        int          `json:"BlockSize"`
	Tags             []tagJSON    `json:"Tags,omitempty"`
	ParentSnapshotID string       `json:"ParentSnapshotId,omitempty"`
}

// startSnapshot: a new pending snapshot, listed by EC2 DescribeSnapshots
// with VolumeId vol-ffffffff as AWS lists one.
func (s *Service) startSnapshot(q *request) error {
	var in startInput
	if err := json.Unmarshal(q.body, &in); err != nil {
		return validation(reasonInvalidParameter, "The request body is not valid JSON: "+err.Error())
	}
	maxGiB := int64(volume.MaxVolumeSize >> 30)
	if in.VolumeSize == nil || *in.VolumeSize < 1 || *in.VolumeSize > maxGiB {
		return validation(reasonInvalidVolumeSize, "The volume size must be between 1 and "+strconv.FormatInt(maxGiB, 10)+" GiB.")
	}
	// volgw stores blocks as they are (the object store's own encryption
	// applies); it does not accept an encryption it would not perform.
	if (in.Encrypted != nil && *in.Encrypted) || in.KmsKeyArn != "" {
		return validation(reasonInvalidParameter, "volgw does not encrypt snapshots imported through the EBS direct APIs (it seals volumes created with KMSEncrypted): Encrypted and KmsKeyArn are not supported.")
	}
	timeout := defaultTimeout
	if in.Timeout != nil {
		if *in.Timeout < 10 || *in.Timeout > 4320 {
			return validation(reasonInvalidParameter, "The timeout must be between 10 and 4320 minutes.")
		}
		timeout = time.Duration(*in.Timeout) * time.Minute
	}
	if in.ParentSnapshotID != "" {
		if err := checkSnapshotID(in.ParentSnapshotID); err != nil {
			return err
		}
	}
	description := ""
	if in.Description != nil {
		description = *in.Description
		if description == "" || utf8.RuneCountInString(description) > 255 {
			return validation(reasonInvalidParameter, "The description must be 1 to 255 characters.")
		}
	}
	if len(in.ClientToken) > 255 || strings.ContainsAny(in.ClientToken, " \t\r\n") {
		return validation(reasonInvalidParameter, "The client token is not valid.")
	}
	tags := make([]control.Tag, 0, len(in.Tags))
	for _, t := range in.Tags {
		if t.Key == "" || utf8.RuneCountInString(t.Key) > 127 || utf8.RuneCountInString(t.Value) > 255 ||
			(len(t.Key) >= 4 && strings.EqualFold(t.Key[:4], "aws:")) {
			return validation(reasonInvalidTag, "The tag '"+t.Key+"' is not valid.")
		}
		tags = append(tags, control.Tag{Key: t.Key, Value: t.Value})
	}
	if len(tags) > control.MaxTags {
		return validation(reasonInvalidTag, "A snapshot can have at most 50 tags.")
	}
	id, err := s.cfg.NewSnapshotID()
	if err != nil {
		return err
	}
	// The SDKs fill ClientToken in; a token is one per caller, so two
	// access keys' equal tokens are not the same request.
	token := ""
	if in.ClientToken != "" {
		token = awsAccessKey(q.ctx) + "/" + in.ClientToken
	}
	snap, err := s.cfg.Imports.StartImport(q.ctx, volume.ImportRequest{SnapshotID: id, SizeBytes: *in.VolumeSize << 30,
		ParentID: in.ParentSnapshotID, Description: description, Tags: tags, ClientToken: token, Timeout: timeout})
	switch {
	case errors.Is(err, volume.ErrParentNotFound):
		return apiError(typeNotFound, http.StatusNotFound, reasonSnapshotNotFound, "The parent snapshot '"+in.ParentSnapshotID+"' does not exist or is not completed.")
	case errors.Is(err, volume.ErrInvalidSize):
		return validation(reasonInvalidVolumeSize, "The volume size is smaller than the parent snapshot's.")
	case errors.Is(err, volume.ErrTokenConflict):
		return apiError(typeConflict, http.StatusConflict, "", "The request uses the same client token as a previous, but non-identical request.")
	case err != nil:
		return err
	}
	out := startOutput{Description: snap.Description, SnapshotID: snap.ID, OwnerID: s.cfg.Account, Status: string(snap.Status),
		StartTime: epochSeconds(snap.StartTime), VolumeSize: volumeGiB(snap.VolumeSizeBytes), BlockSize: BlockSize}
	for _, t := range snap.Tags {
		out.Tags = append(out.Tags, tagJSON(t))
	}
	if out.ParentSnapshotID, err = s.cfg.Imports.ImportParent(q.ctx, snap.ID); err != nil {
		return err
	}
	return writeJSON(q.w, q.reqID, http.StatusCreated, out)
}

// putSnapshotBlock stores one block. The body is unsigned (the SDKs sign
// UNSIGNED-PAYLOAD), so the checksum, which is signed, is what proves the
// bytes are the caller's.
func (s *Service) putSnapshotBlock(q *request) error {
	if err := checkSnapshotID(q.snapshotID); err != nil {
		return err
	}
	index, err := strconv.ParseInt(q.blockIndex, 10, 32)
	if err != nil || index < 0 {
		return validation(reasonInvalidBlock, "The block index '"+q.blockIndex+"' is not valid.")
	}
	h := q.r.Header
	if n, err := strconv.Atoi(h.Get("x-amz-Data-Length")); err != nil || n != BlockSize || len(q.body) != BlockSize {
		return validation(reasonInvalidParameter, "The data length must be 524288 bytes, and the body that long.")
	}
	if alg := h.Get("x-amz-Checksum-Algorithm"); alg != "SHA256" {
		return validation(reasonInvalidParameter, "The checksum algorithm '"+alg+"' is not supported: only SHA256 is.")
	}
	sum := sha256.Sum256(q.body)
	given := h.Get("x-amz-Checksum")
	if given != base64.StdEncoding.EncodeToString(sum[:]) {
		// The model has no reason for this; INVALID_PARAMETER_VALUE is
		// the nearest of its enum.
		return validation(reasonInvalidParameter, "The checksum '"+given+"' does not match the block data.")
	}
	progress := -1
	if v := h.Get("x-amz-Progress"); v != "" {
		if progress, err = strconv.Atoi(v); err != nil || progress < 0 || progress > 100 {
			return validation(reasonInvalidParameter, "The progress must be between 0 and 100.")
		}
	}
	err = s.cfg.Imports.PutImportBlock(q.ctx, q.snapshotID, index, q.body, sum, progress)
	if err := s.importError(q.snapshotID, err); err != nil {
		if errors.Is(err, volume.ErrOutOfRange) {
			return validation(reasonInvalidBlock, "The block index "+q.blockIndex+" is beyond the end of the volume.")
		}
		return err
	}
	w := q.w.Header()
	w["x-amzn-RequestId"] = []string{q.reqID}
	w["x-amz-Checksum"] = []string{given}
	w["x-amz-Checksum-Algorithm"] = []string{"SHA256"}
	w.Set("Content-Type", "application/json")
	w.Set("Content-Length", "2")
	q.w.WriteHeader(http.StatusCreated)
	_, _ = q.w.Write([]byte("{}"))
	return nil
}

// importError maps the engine's errors common to put and complete.
func (s *Service) importError(id string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, control.ErrSnapshotNotFound):
		return snapshotNotFound(id)
	case errors.Is(err, volume.ErrSnapshotNotWritable):
		return validation(reasonInvalidSnapshotID, "The snapshot '"+id+"' is not in the pending state.")
	}
	return err
}

// completeSnapshot builds the snapshot from the blocks put. EBS completes
// asynchronously and answers "pending"; volgw has written the root when it
// answers, so it answers "completed".
func (s *Service) completeSnapshot(q *request) error {
	if err := checkSnapshotID(q.snapshotID); err != nil {
		return err
	}
	h := q.r.Header
	changed, err := strconv.Atoi(h.Get("x-amz-ChangedBlocksCount"))
	if err != nil || changed < 0 {
		return validation(reasonInvalidParameter, "ChangedBlocksCount is required and must be a number of blocks.")
	}
	var aggregate *[32]byte
	if c := h.Get("x-amz-Checksum"); c != "" {
		if h.Get("x-amz-Checksum-Algorithm") != "SHA256" || h.Get("x-amz-Checksum-Aggregation-Method") != "LINEAR" {
			return validation(reasonInvalidParameter, "An aggregate checksum needs the algorithm SHA256 and the aggregation method LINEAR.")
		}
		b, err := base64.StdEncoding.DecodeString(c)
		if err != nil || len(b) != 32 {
			return validation(reasonInvalidParameter, "The checksum '"+c+"' is not a base64 SHA-256.")
		}
		aggregate = (*[32]byte)(b)
	}
	snap, err := s.cfg.Imports.CompleteImport(q.ctx, q.snapshotID, changed, aggregate)
	switch {
	case errors.Is(err, volume.ErrChangedBlocksCount):
		return validation(reasonInvalidParameter, "The ChangedBlocksCount "+strconv.Itoa(changed)+" does not match the number of blocks written to the snapshot.")
	case errors.Is(err, volume.ErrAggregateChecksum):
		return validation(reasonInvalidParameter, "The aggregate checksum does not match the blocks written to the snapshot.")
	case errors.Is(err, volume.ErrParentNotFound):
		return apiError(typeNotFound, http.StatusNotFound, reasonSnapshotNotFound, "The parent snapshot of '"+q.snapshotID+"' no longer exists.")
	}
	if err := s.importError(q.snapshotID, err); err != nil {
		return err
	}
	return writeJSON(q.w, q.reqID, http.StatusAccepted, map[string]string{"Status": string(snap.Status)})
}
