package control

import (
	"context"
	"errors"
	"os"

	"github.com/volgw/volgw/internal/catalog"
)

// LocalDisk is one entry of ListLocalDisks.
type LocalDisk struct {
	DiskID             string
	DiskPath           string
	DiskNode           string
	DiskStatus         string // present, missing or mismatch (cachereset.go)
	DiskSizeInBytes    int64
	DiskAllocationType string // AVAILABLE, CACHE_STORAGE or UPLOAD_BUFFER
}

// ListLocalDisks lists the appliance's disks.
func (s *Service) ListLocalDisks(ctx context.Context, gatewayARN string) ([]LocalDisk, error) {
	var disks []catalog.Disk
	err := s.view(func(tx *catalog.Tx) error {
		if _, err := s.runningGatewayTx(tx, gatewayARN); err != nil {
			return err
		}
		var err error
		disks, err = tx.Disks()
		return err
	})
	if err != nil {
		return nil, err
	}
	out := []LocalDisk{}
	for _, d := range disks {
		out = append(out, LocalDisk{
			DiskID: d.ID, DiskPath: d.Path, DiskNode: d.Node, DiskStatus: s.diskStatus(d),
			DiskSizeInBytes: d.SizeBytes, DiskAllocationType: d.Allocation,
		})
	}
	return out, nil
}

// AddCache allocates disks as cache storage.
func (s *Service) AddCache(ctx context.Context, gatewayARN string, diskIDs []string) (string, error) {
	return s.allocateDisks(ctx, gatewayARN, diskIDs, catalog.DiskCache)
}

// AddUploadBuffer allocates disks as upload buffer.
func (s *Service) AddUploadBuffer(ctx context.Context, gatewayARN string, diskIDs []string) (string, error) {
	return s.allocateDisks(ctx, gatewayARN, diskIDs, catalog.DiskUploadBuffer)
}

func (s *Service) allocateDisks(ctx context.Context, gatewayARN string, diskIDs []string, use string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g catalog.Gateway
	var disks []catalog.Disk
	err := s.view(func(tx *catalog.Tx) error {
		var err error
		if g, err = s.runningGatewayTx(tx, gatewayARN); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, id := range diskIDs {
			d, err := tx.Disk(id)
			if errors.Is(err, catalog.ErrNotFound) {
				return newError(CodeDiskDoesNotExist)
			} else if err != nil {
				return err
			}
			if d.Allocation != catalog.DiskAvailable || seen[id] {
				return newError(CodeDiskAlreadyAllocated)
			}
			// A disk whose file is gone (ListLocalDisks shows it
			// "missing": a disks dir on a mount that is not there, a file
			// deleted by hand) cannot be added, as a disk detached from
			// the appliance's VM cannot: the engine would create a new
			// empty file in its place, on whatever filesystem is there now.
			if _, err := os.Stat(d.Path); err != nil {
				return newError(CodeDiskDoesNotExist)
			}
			seen[id] = true
			d.Allocation = use
			disks = append(disks, d)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	// The engine gets the disk before the catalog records it: after a
	// crash in between the disk is still AVAILABLE and AddCache can be
	// repeated (AddDisk is called with the same arguments again).
	for _, d := range disks {
		if err := s.engine.AddDisk(ctx, engineDisk(d)); err != nil {
			return "", err
		}
	}
	err = s.update(func(tx *catalog.Tx) error {
		for _, d := range disks {
			if err := tx.PutDisk(d); err != nil {
				return err
			}
		}
		return nil
	})
	return g.ARN, err
}

// CacheInfo is DescribeCache's output. The usage figures are set only when
// the engine reports them (CacheReporter); volgw does not invent numbers.
type CacheInfo struct {
	GatewayARN            string
	DiskIDs               []string
	CacheAllocatedInBytes int64
	Stats                 *CacheStats
}

// DescribeCache describes the cache storage.
func (s *Service) DescribeCache(ctx context.Context, gatewayARN string) (CacheInfo, error) {
	g, disks, err := s.allocatedDisks(gatewayARN, catalog.DiskCache)
	if err != nil {
		return CacheInfo{}, err
	}
	ids, size := diskSummary(disks)
	info := CacheInfo{GatewayARN: g.ARN, DiskIDs: ids, CacheAllocatedInBytes: size}
	if r, ok := s.engine.(CacheReporter); ok && len(disks) > 0 {
		st, err := r.CacheStats(ctx)
		if err != nil {
			return CacheInfo{}, err
		}
		info.Stats = &st
	}
	return info, nil
}

// UploadBufferInfo is DescribeUploadBuffer's output; UsedInBytes is set
// only when the engine reports it (UploadBufferReporter).
type UploadBufferInfo struct {
	GatewayARN       string
	DiskIDs          []string
	AllocatedInBytes int64
	UsedInBytes      *int64
}

// DescribeUploadBuffer describes the upload buffer.
func (s *Service) DescribeUploadBuffer(ctx context.Context, gatewayARN string) (UploadBufferInfo, error) {
	g, disks, err := s.allocatedDisks(gatewayARN, catalog.DiskUploadBuffer)
	if err != nil {
		return UploadBufferInfo{}, err
	}
	ids, size := diskSummary(disks)
	info := UploadBufferInfo{GatewayARN: g.ARN, DiskIDs: ids, AllocatedInBytes: size}
	if r, ok := s.engine.(UploadBufferReporter); ok && len(disks) > 0 {
		used, err := r.UploadBufferUsedBytes(ctx)
		if err != nil {
			return UploadBufferInfo{}, err
		}
		info.UsedInBytes = &used
	}
	return info, nil
}

// diskSummary is what DescribeCache and DescribeUploadBuffer say of the
// disks allocated to a use: their IDs (never null on the wire) and total size.
func diskSummary(disks []catalog.Disk) (ids []string, size int64) {
	ids = []string{}
	for _, d := range disks {
		ids = append(ids, d.ID)
		size += d.SizeBytes
	}
	return ids, size
}

func (s *Service) allocatedDisks(gatewayARN, use string) (catalog.Gateway, []catalog.Disk, error) {
	var g catalog.Gateway
	var out []catalog.Disk
	err := s.view(func(tx *catalog.Tx) error {
		var err error
		if g, err = s.runningGatewayTx(tx, gatewayARN); err != nil {
			return err
		}
		out, err = disksFor(tx, use)
		return err
	})
	return g, out, err
}

func disksFor(tx *catalog.Tx, use string) ([]catalog.Disk, error) {
	all, err := tx.Disks()
	if err != nil {
		return nil, err
	}
	var out []catalog.Disk
	for _, d := range all {
		if d.Allocation == use {
			out = append(out, d)
		}
	}
	return out, nil
}
