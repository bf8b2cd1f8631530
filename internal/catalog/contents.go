package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Contents is every record of a catalog that outlives a restart of the
// appliance's clients: all of them except unconsumed activation keys, which
// expire within minutes. It is what a copy of the catalog kept elsewhere
// must hold for Restore to rebuild an equivalent catalog.
type Contents struct {
	// Generation is the catalog's generation (see Tx.Generation).
	Generation   uint64
	Gateways     []Gateway
	Disks        []Disk
	Volumes      []Volume
	Chap         []ChapCredential
	Tags         []ResourceTags
	Schedules    []Schedule
	ClientTokens []ClientToken
	Maintenance  []Maintenance // maintenance.go
	Bandwidth    []Bandwidth   // bandwidth.go
}

// Contents reads every durable record, each kind ordered by key.
func (tx *Tx) Contents() (Contents, error) {
	var c Contents
	var err error
	if c.Generation, err = tx.Generation(); err != nil {
		return c, err
	}
	if c.Gateways, err = tx.Gateways(); err != nil {
		return c, err
	}
	if c.Disks, err = tx.Disks(); err != nil {
		return c, err
	}
	if c.Volumes, err = tx.Volumes(); err != nil {
		return c, err
	}
	if c.Chap, err = list[ChapCredential](tx, bucketChap, ""); err != nil {
		return c, err
	}
	if c.Tags, err = list[ResourceTags](tx, bucketTags, ""); err != nil {
		return c, err
	}
	if c.Schedules, err = tx.Schedules(); err != nil {
		return c, err
	}
	if c.ClientTokens, err = list[ClientToken](tx, bucketClientTokens, ""); err != nil {
		return c, err
	}
	if c.Maintenance, err = tx.Maintenances(); err != nil {
		return c, err
	}
	c.Bandwidth, err = tx.Bandwidths()
	return c, err
}

// putContents writes every record of c, validating each as Put does.
func (tx *Tx) putContents(c Contents) error {
	if err := tx.SetGeneration(c.Generation); err != nil {
		return err
	}
	for _, g := range c.Gateways {
		if err := tx.PutGateway(g); err != nil {
			return err
		}
	}
	for _, d := range c.Disks {
		if err := tx.PutDisk(d); err != nil {
			return err
		}
	}
	for _, v := range c.Volumes {
		if err := tx.PutVolume(v); err != nil {
			return err
		}
	}
	for _, ch := range c.Chap {
		if err := tx.PutChapCredential(ch); err != nil {
			return err
		}
	}
	for _, t := range c.Tags {
		if err := tx.PutTags(t.ResourceARN, t.Tags); err != nil {
			return err
		}
	}
	for _, s := range c.Schedules {
		if err := tx.PutSchedule(s); err != nil {
			return err
		}
	}
	for _, t := range c.ClientTokens {
		if err := tx.PutClientToken(t); err != nil {
			return err
		}
	}
	for _, m := range c.Maintenance {
		if err := tx.PutMaintenance(m); err != nil {
			return err
		}
	}
	for _, b := range c.Bandwidth {
		if err := tx.PutBandwidth(b); err != nil {
			return err
		}
	}
	return nil
}

// Restore creates dataDir's catalog from c, the way back from a lost or
// damaged catalog.db. It takes the data dir's lock (ErrInUse while volgw
// runs there) and refuses to replace an existing catalog.db (ErrExists):
// moving a damaged file aside is the user's decision, and keeps it for a
// post-mortem. Every record is validated, and the cross-record invariants
// (Check) must hold, or nothing is written.
func Restore(dataDir string, c Contents) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("catalog: create data dir: %w", err)
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer lock.release()
	path := filepath.Join(dataDir, FileName)
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("catalog: %w", err)
	}
	return create(path, c)
}

var keyGeneration = []byte("generation")

// Generation is a counter that whoever keeps a copy of the catalog
// advances with each change it copies (catalogmirror does, in the same
// transaction): comparing it with the copy's tells a catalog that went back
// in time (restored from a backup, rolled back) from one that is current.
// A catalog that never had one is at 0.
func (tx *Tx) Generation() (uint64, error) {
	raw := tx.tx.Bucket(bucketMeta).Get(keyGeneration)
	switch len(raw) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(raw), nil
	}
	return 0, invalid("generation of %d bytes", len(raw))
}

// SetGeneration records the catalog's generation.
func (tx *Tx) SetGeneration(n uint64) error {
	return tx.tx.Bucket(bucketMeta).Put(keyGeneration, binary.BigEndian.AppendUint64(nil, n))
}
