package ebsapi

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"

	"github.com/volgw/volgw/internal/volume"
)

// Paging: MaxResults is 100..10000 in the model; EBS answers a smaller
// value with at least 100 results (its FAQ), and so does volgw. A larger
// one is refused by the model's range.
const (
	minResults     = 100
	maxResults     = 10000
	defaultResults = maxResults
)

// paging reads MaxResults, NextToken and StartingBlockIndex; a NextToken
// wins over StartingBlockIndex, as EBS documents.
func paging(q *request, scope string) (from int64, limit int, err error) {
	n, err := intParam(q.query, "maxResults", 0, defaultResults)
	if err != nil {
		return 0, 0, err
	}
	if n > maxResults {
		return 0, 0, validation(reasonInvalidParameter, "The value '"+strconv.FormatInt(n, 10)+"' of the parameter maxResults is not valid: it must be at most 10000.")
	}
	limit = int(max(n, minResults))
	if tok := q.query.Get("pageToken"); tok != "" {
		from, err := parsePageToken(tok, scope)
		if err != nil {
			return 0, 0, validation(reasonInvalidPageToken, "The pagination token is not valid.")
		}
		return from, limit, nil
	}
	from, err = intParam(q.query, "startingBlockIndex", 0, 0)
	return from, limit, err
}

type blockJSON struct {
	BlockIndex int64  `json:"BlockIndex"`
	BlockToken string `json:"BlockToken"`
}

type listBlocksOutput struct {
	Blocks     []blockJSON  `json:"Blocks"`
	ExpiryTime epochSeconds `json:"ExpiryTime"`
	VolumeSize int64        `json:"VolumeSize"`
	BlockSize  int          `json:"BlockSize"`
	NextToken  string       `json:"NextToken,omitempty"`
}

func (s *Service) listSnapshotBlocks(q *request) error {
	t, err := s.openTree(q.ctx, q.snapshotID)
	if err != nil {
		return err
	}
	scope := "ListSnapshotBlocks/" + t.ID
	from, limit, err := paging(q, scope)
	if err != nil {
		return err
	}
	blocks, next, err := t.Blocks(q.ctx, from, limit)
	if err != nil {
		return err
	}
	expiry := s.cfg.Now().Add(tokenLifetime)
	out := listBlocksOutput{Blocks: make([]blockJSON, len(blocks)), ExpiryTime: epochSeconds(expiry),
		VolumeSize: volumeGiB(t.SizeBytes), BlockSize: BlockSize}
	for i, b := range blocks {
		out.Blocks[i] = blockJSON{BlockIndex: b.Index, BlockToken: blockToken(b.Hash, expiry)}
	}
	if next >= 0 {
		out.NextToken = pageToken(next, scope)
	}
	return writeJSON(q.w, q.reqID, http.StatusOK, out)
}

type changedBlockJSON struct {
	BlockIndex       int64  `json:"BlockIndex"`
	FirstBlockToken  string `json:"FirstBlockToken,omitempty"`
	SecondBlockToken string `json:"SecondBlockToken,omitempty"`
}

type listChangedOutput struct {
	ChangedBlocks []changedBlockJSON `json:"ChangedBlocks"`
	ExpiryTime    epochSeconds       `json:"ExpiryTime"`
	VolumeSize    int64              `json:"VolumeSize"`
	BlockSize     int                `json:"BlockSize"`
	NextToken     string             `json:"NextToken,omitempty"`
}

// listChangedBlocks: the blocks whose content differs between the first
// snapshot (absent: an empty volume) and the second. A token is given for
// each side that holds the block; a side without one reads it as zeros.
//
// EBS requires the two snapshots to be of one volume's lineage
// (UNRELATED_SNAPSHOTS otherwise). volgw compares content, which means
// the same between any two snapshots, so it compares any two.
func (s *Service) listChangedBlocks(q *request) error {
	second, err := s.openTree(q.ctx, q.snapshotID)
	if err != nil {
		return err
	}
	var first *volume.SnapshotTree
	firstID := q.query.Get("firstSnapshotId")
	if q.query.Has("firstSnapshotId") {
		if first, err = s.openTree(q.ctx, firstID); err != nil {
			return err
		}
	}
	scope := "ListChangedBlocks/" + firstID + "/" + second.ID
	from, limit, err := paging(q, scope)
	if err != nil {
		return err
	}
	changed, next, _, err := second.ChangedBlocks(q.ctx, first, from, limit)
	if err != nil {
		return err
	}
	expiry := s.cfg.Now().Add(tokenLifetime)
	out := listChangedOutput{ChangedBlocks: make([]changedBlockJSON, len(changed)), ExpiryTime: epochSeconds(expiry),
		VolumeSize: volumeGiB(second.SizeBytes), BlockSize: BlockSize}
	for i, c := range changed {
		out.ChangedBlocks[i].BlockIndex = c.Index
		if c.First != ([32]byte{}) {
			out.ChangedBlocks[i].FirstBlockToken = blockToken(c.First, expiry)
		}
		if c.Second != ([32]byte{}) {
			out.ChangedBlocks[i].SecondBlockToken = blockToken(c.Second, expiry)
		}
	}
	if next >= 0 {
		out.NextToken = pageToken(next, scope)
	}
	return writeJSON(q.w, q.reqID, http.StatusOK, out)
}

// getSnapshotBlock: the block's 524288 bytes, with its SHA-256 (base64)
// in x-amz-Checksum. The token must name the snapshot's block at that
// index (INVALID_BLOCK_TOKEN otherwise); the bytes are checked against
// their content address as they come from the store, so the checksum sent
// is that of the bytes the snapshot holds.
func (s *Service) getSnapshotBlock(q *request) error {
	t, err := s.openTree(q.ctx, q.snapshotID)
	if err != nil {
		return err
	}
	index, err := strconv.ParseInt(q.blockIndex, 10, 32)
	if err != nil || index < 0 {
		return validation(reasonInvalidBlock, "The block index '"+q.blockIndex+"' is not valid.")
	}
	tok := q.query.Get("blockToken")
	if tok == "" {
		return validation(reasonInvalidBlockToken, "The block token is required.")
	}
	want, err := parseBlockToken(tok, s.cfg.Now())
	if errors.Is(err, errExpiredToken) {
		return validation(reasonInvalidBlockToken, "The block token has expired.")
	}
	if err != nil {
		return validation(reasonInvalidBlockToken, "The block token is not valid.")
	}
	data, sum, err := t.Block(q.ctx, index, want)
	switch {
	case errors.Is(err, volume.ErrOutOfRange):
		return validation(reasonInvalidBlock, "The block index "+q.blockIndex+" is beyond the end of the volume.")
	case errors.Is(err, volume.ErrBlockMismatch):
		return validation(reasonInvalidBlockToken, "The block token is not valid for block "+q.blockIndex+" of the snapshot.")
	case err != nil:
		return err
	}
	h := q.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h["x-amzn-RequestId"] = []string{q.reqID}
	h["x-amz-Data-Length"] = []string{strconv.Itoa(len(data))}
	h["x-amz-Checksum"] = []string{base64.StdEncoding.EncodeToString(sum[:])}
	h["x-amz-Checksum-Algorithm"] = []string{"SHA256"}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	q.w.WriteHeader(http.StatusOK)
	_, _ = q.w.Write(data)
	return nil
}
