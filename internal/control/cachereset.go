package control

import (
	"context"
	"os"
	"slices"

	"github.com/volgw/volgw/internal/catalog"
)

// CacheResetter is implemented by engines whose cache disks can be reset
// (ResetCache). ResetCache drops every cache disk and returns their paths;
// the volumes refuse I/O until AddDisk adds a cache disk again, which
// brings them back with every acknowledged write (the engine keeps those in
// its upload buffer, not in the cache).
//
// FailedCacheDisks lists the paths of cache disks that failed (I/O errors)
// and are still in use: ListLocalDisks shows them "mismatch".
type CacheResetter interface {
	ResetCache(ctx context.Context) ([]string, error)
	FailedCacheDisks() []string
}

// diskStatus is a disk's DiskStatus as AWS documents it: "present" (the
// disk is available to use), "missing" (no longer connected: the file is
// gone) or "mismatch" (its content is corrupted: a cache disk the engine
// found failing, until ResetCache).
func (s *Service) diskStatus(d catalog.Disk) string {
	if _, err := os.Stat(d.Path); err != nil {
		return "missing"
	}
	if r, ok := s.engine.(CacheResetter); ok && d.Allocation == catalog.DiskCache {
		if slices.Contains(r.FailedCacheDisks(), d.Path) {
			return "mismatch"
		}
	}
	return "present"
}

// ResetCache resets the gateway's cache disks: the engine drops them and
// the catalog makes them AVAILABLE, to be added again with AddCache.
//
// AWS warns that data not yet uploaded "can be lost"; volgw's engine keeps
// it in the upload buffer and rebuilds every volume when a cache disk is
// added, so nothing acknowledged is lost. Meanwhile the volumes report PASS
// THROUGH and refuse I/O (AWS: "the gateway prevents read and write
// operations").
//
// The engine forgets the disks before the catalog does: a crash in
// between leaves them CACHE_STORAGE in the catalog, and the next start
// hands them to the engine again (AddDisk at Start), which is a gateway
// with a working cache; ResetCache can simply be called again.
func (s *Service) ResetCache(ctx context.Context, gatewayARN string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g catalog.Gateway
	err := s.view(func(tx *catalog.Tx) error {
		var err error
		g, err = s.runningGatewayTx(tx, gatewayARN)
		return err
	})
	if err != nil {
		return "", err
	}
	r, ok := s.engine.(CacheResetter)
	if !ok {
		return "", newError(CodeNotSupported)
	}
	if _, err := r.ResetCache(ctx); err != nil {
		return "", engineError(err)
	}
	err = s.update(func(tx *catalog.Tx) error {
		disks, err := disksFor(tx, catalog.DiskCache)
		if err != nil {
			return err
		}
		for _, d := range disks {
			d.Allocation = catalog.DiskAvailable
			if err := tx.PutDisk(d); err != nil {
				return err
			}
		}
		return nil
	})
	return g.ARN, err
}
