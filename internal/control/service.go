package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/volgw/volgw/internal/catalog"
)

// Catalog is the persistent store the control plane keeps its records in;
// *catalog.DB implements it. Update's function runs atomically.
type Catalog interface {
	View(fn func(*catalog.Tx) error) error
	Update(fn func(*catalog.Tx) error) error
}

// TargetExporter puts volumes on the iSCSI wire. main implements it with
// the engine's volumes, scsi devices and the iSCSI server.
type TargetExporter interface {
	// Export makes the volume reachable as LUN spec.LUN of target spec.IQN,
	// accepting the initiators spec.CHAP names (any initiator when CHAP is
	// empty). Exporting an IQN that is already exported replaces its
	// configuration (this is how CHAP changes take effect); when the CHAP
	// list changes, the target's sessions are closed and initiators must
	// log in again under the new credentials, as on AWS. Exporting the
	// same spec again changes nothing.
	Export(ctx context.Context, spec ExportSpec) error
	// Unexport removes a target: new logins to it are refused ("target
	// removed"), and sessions logged in to it fail every later command
	// (LOGICAL UNIT NOT SUPPORTED) so that initiators give up rather than
	// reconnect for ever; exporting the same IQN again closes those
	// sessions, so their initiators log in again (StartGateway after
	// ShutdownGateway). When it returns, nothing runs on the volume any
	// more. Unexporting an IQN that is not exported is not an error.
	Unexport(ctx context.Context, iqn string) error
	// Initiators returns the IQNs of the initiators logged in to a target
	// now.
	Initiators(iqn string) []string
}

// ExportSpec is one target with one LUN.
type ExportSpec struct {
	VolumeID string
	IQN      string
	LUN      uint64
	CHAP     []CHAPSecret
}

// CHAPSecret is what one initiator must prove (and, for mutual CHAP, what
// the target proves back).
type CHAPSecret struct {
	InitiatorName                 string
	SecretToAuthenticateInitiator string
	SecretToAuthenticateTarget    string // empty: one-way CHAP
}

// CacheReporter is implemented by engines that can report cache usage;
// DescribeCache shows the figures when the engine has them.
type CacheReporter interface {
	CacheStats(ctx context.Context) (CacheStats, error)
}

// CacheStats are percentages of the cache, 0..100.
type CacheStats struct {
	UsedPercent, DirtyPercent, HitPercent, MissPercent float64
}

// UploadBufferReporter is implemented by engines that can report how much of
// the upload buffer holds data not yet uploaded.
type UploadBufferReporter interface {
	UploadBufferUsedBytes(ctx context.Context) (int64, error)
}

// Config is everything a Service depends on.
type Config struct {
	Catalog  Catalog
	Engine   VolumeEngine
	Exporter TargetExporter
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of IDs' randomness; nil means crypto/rand.
	Rand   io.Reader
	Logger *slog.Logger

	Region  string // e.g. us-east-1
	Account string // 12 digits

	// ISCSIAddress is the IPv4 address targets listen on: the gateway's
	// one network interface, and the only valid NetworkInterfaceId.
	ISCSIAddress string
	ISCSIPort    int

	// DiskDir holds the appliance's local disk files; on first start one
	// cache disk of CacheDiskSize and one upload-buffer disk of
	// UploadBufferDiskSize bytes are created there (sparse).
	DiskDir              string
	CacheDiskSize        int64
	UploadBufferDiskSize int64

	// SoftwareVersion is the version of the running build, what
	// DescribeGatewayInformation reports as SoftwareVersion and what
	// UpdateGatewaySoftwareNow finds current (software.go).
	SoftwareVersion string

	// Bandwidth, if set, is given the rates the gateway's bandwidth
	// limits put in force (bandwidth.go).
	Bandwidth BandwidthLimiter

	// Keys says which encryption keys the gateway has (keys.go); nil:
	// none, and every KMSKey is refused.
	Keys Keys
}

// Service is the control plane. Its methods are safe for concurrent use.
type Service struct {
	cat      Catalog
	engine   VolumeEngine
	exporter TargetExporter
	now      func() time.Time
	ids      idSource
	log      *slog.Logger

	region, account string
	iscsiAddress    string
	iscsiPort       int

	diskDir                 string
	cacheSize, uploadBuffer int64

	softwareVersion string

	// bandwidth takes the rates in force; rates is the last pair given
	// (guarded by mu).
	bandwidth BandwidthLimiter
	rates     [2]int64

	keys Keys // nil: the gateway has no encryption keys

	// mu serialises every operation that changes state, so that the checks
	// an operation makes (TargetName unused, disk available, gateway
	// running) still hold when it calls the engine and the exporter and
	// writes the catalog. Reads do not take it: the catalog gives them a
	// consistent snapshot.
	mu sync.Mutex
}

// Default sizes of the appliance's disks when the configuration gives none.
const (
	DefaultCacheDiskSize        = 10 << 30
	DefaultUploadBufferDiskSize = 5 << 30
)

// ActivationKeyLifetime is how long a key from the appliance stays valid.
const ActivationKeyLifetime = 30 * time.Minute

// New checks cfg and returns a Service. Call Start before serving.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Catalog == nil || cfg.Engine == nil || cfg.Exporter == nil:
		return nil, errors.New("control: Catalog, Engine and Exporter are required")
	case cfg.Region == "" || len(cfg.Account) != 12:
		return nil, fmt.Errorf("control: region %q and 12-digit account %q required", cfg.Region, cfg.Account)
	case cfg.ISCSIAddress == "" || cfg.ISCSIPort <= 0:
		return nil, fmt.Errorf("control: iSCSI address %q port %d", cfg.ISCSIAddress, cfg.ISCSIPort)
	case cfg.DiskDir == "":
		return nil, errors.New("control: DiskDir required")
	}
	s := &Service{
		cat: cfg.Catalog, engine: cfg.Engine, exporter: cfg.Exporter,
		now: cfg.Now, ids: idSource{rand: cfg.Rand}, log: cfg.Logger,
		region: cfg.Region, account: cfg.Account,
		iscsiAddress: cfg.ISCSIAddress, iscsiPort: cfg.ISCSIPort,
		diskDir: cfg.DiskDir, cacheSize: cfg.CacheDiskSize, uploadBuffer: cfg.UploadBufferDiskSize,
		softwareVersion: cfg.SoftwareVersion, bandwidth: cfg.Bandwidth, keys: cfg.Keys,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ids.rand == nil {
		s.ids.rand = cryptoRand{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cacheSize <= 0 {
		s.cacheSize = DefaultCacheDiskSize
	}
	if s.uploadBuffer <= 0 {
		s.uploadBuffer = DefaultUploadBufferDiskSize
	}
	return s, nil
}

// Region is the region the service's ARNs carry.
func (s *Service) Region() string { return s.region }

// Account is the account ID the service's ARNs carry.
func (s *Service) Account() string { return s.account }

// Start brings the appliance up after a (re)start: it creates the default
// local disks on first start, hands every allocated disk to the engine, and
// exports the targets of every volume of a running gateway. It must return
// before the API serves requests.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The limits first: everything Start sends to the store is paced.
	if err := s.applyBandwidthLocked(); err != nil {
		return err
	}
	if err := s.checkEngineBelongs(ctx); err != nil {
		return err
	}
	if err := s.ensureDisks(); err != nil {
		return err
	}
	var disks []catalog.Disk
	var gateways []catalog.Gateway
	var volumes []catalog.Volume
	err := s.cat.View(func(tx *catalog.Tx) error {
		var err error
		if disks, err = tx.Disks(); err != nil {
			return err
		}
		if gateways, err = tx.Gateways(); err != nil {
			return err
		}
		volumes, err = tx.Volumes()
		return err
	})
	if err != nil {
		return fmt.Errorf("control: start: %w", err)
	}
	// Cache disks first, then upload buffers, each by ID: the same order
	// on every start.
	for _, use := range []string{catalog.DiskCache, catalog.DiskUploadBuffer} {
		for _, d := range disks {
			if d.Allocation != use {
				continue
			}
			if err := s.engine.AddDisk(ctx, engineDisk(d)); err != nil {
				return fmt.Errorf("control: start: disk %s: %w", d.ID, err)
			}
		}
	}
	if volumes, err = s.resolveMoves(ctx, volumes); err != nil {
		return err
	}
	lost, err := s.reconcile(ctx, volumes)
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, g := range gateways {
		running[g.ID] = g.State == catalog.GatewayRunning
		if _, ok := parseTimezone(g.Timezone); !ok {
			s.log.Warn("start: gateway time zone is not one AWS accepts; its snapshot schedules run on GMT until UpdateGatewayInformation sets one",
				"gateway", g.ID, "timezone", g.Timezone)
		}
	}
	for _, v := range volumes {
		if !running[v.GatewayID] || lost[v.ID] || v.Attachment != "" {
			continue
		}
		// One volume that cannot be exported (its engine state lost, say)
		// must not keep the API and every other volume down: it is logged
		// and stays off the wire; StartGateway retries it.
		if err := s.export(ctx, v); err != nil {
			s.log.Error("start: volume not exported", "volume", v.ID, "target", iqnOf(v), "err", err)
		}
	}
	return nil
}

// reconcile makes the engine's volumes and the catalog's agree after a
// (re)start. The catalog is written last when a volume is created and
// first when one is deleted (doc.go), so a crash in between leaves the
// engine holding a volume no catalog record names: no client was told it
// exists (a create that never answered) or was told it is gone (a delete).
// Such a volume is deleted from the engine. The other way round, a volume
// the catalog names and the engine does not hold has lost its local state:
// it is logged at ERROR and reported IRRECOVERABLE (volumeCondition); the
// returned set names those volumes, which are not exported.
// (checkEngineBelongs has made sure that the catalog is the one these
// volumes were created with.)
func (s *Service) reconcile(ctx context.Context, volumes []catalog.Volume) (map[string]bool, error) {
	named := map[string]bool{}
	for _, v := range volumes {
		named[v.ID] = true
	}
	if l, ok := s.engine.(VolumeLister); ok {
		local, err := l.LocalVolumes(ctx)
		if err != nil {
			return nil, fmt.Errorf("control: start: listing the engine's volumes: %w", err)
		}
		for _, id := range local {
			if named[id] {
				continue
			}
			s.log.Warn("start: deleting a volume no catalog record names (a CreateCachediSCSIVolume that never completed, or a DeleteVolume interrupted after its catalog write)",
				"volume", id)
			if err := s.engine.DeleteVolume(ctx, id); err != nil && !errors.Is(err, ErrVolumeNotFound) {
				// It stays an orphan nothing names; the next start tries
				// again. The API is not held hostage to it.
				s.log.Error("start: deleting an unnamed engine volume", "volume", id, "err", err)
			}
		}
	}
	lost := map[string]bool{}
	for _, v := range volumes {
		if v.Attachment != "" {
			continue // DETACHED (resolveMoves): the engine holds it no more
		}
		cond, err := s.volumeCondition(ctx, v.ID)
		if err != nil {
			return nil, fmt.Errorf("control: start: %w", err)
		}
		if cond.Status == VolumeIrrecoverable && cond.Reason == errLocalStateLost {
			lost[v.ID] = true
			s.log.Error("start: volume IRRECOVERABLE: the catalog names it but the engine does not hold it",
				"volume", v.ID, "arn", v.ARN, "reason", cond.Reason)
		}
	}
	return lost, nil
}

// Disk kinds: the prefix of a disk's ID says which configured size made
// it (cache0, cache1, … and buffer0, buffer1, …), whatever it was later
// allocated to.
const (
	cacheDiskPrefix  = "cache"
	bufferDiskPrefix = "buffer"
)

// checkEngineBelongs refuses to start a new catalog (one without even the
// appliance's disks, which the first start records) over an engine that
// already holds volumes: those belong to a catalog that was lost, and the
// reconciliation would delete them as orphans. Nothing is written, so
// every start says the same until the data dir is put right.
func (s *Service) checkEngineBelongs(ctx context.Context) error {
	l, ok := s.engine.(VolumeLister)
	if !ok {
		return nil
	}
	var n int
	if err := s.cat.View(func(tx *catalog.Tx) error {
		ds, err := tx.Disks()
		n = len(ds)
		return err
	}); err != nil {
		return fmt.Errorf("control: disks: %w", err)
	}
	if n > 0 {
		return nil
	}
	local, err := l.LocalVolumes(ctx)
	if err != nil {
		return fmt.Errorf("control: start: listing the engine's volumes: %w", err)
	}
	if len(local) > 0 {
		return fmt.Errorf("control: the catalog is new but the engine already holds %d volume(s) (%s): "+
			"catalog.db was lost or replaced; restore it, or move the engine directory aside to start an empty appliance "+
			"(the volumes' data and snapshots stay in the object store)", len(local), strings.Join(local, ", "))
	}
	return nil
}

// ensureDisks makes the appliance's disk files match the configured sizes,
// as attaching disks to the appliance's VM would: on the first start one
// cache disk and one upload-buffer disk; on a later start with a larger size,
// one new disk for the difference, AVAILABLE for AddCache or
// AddUploadBuffer. Disks never shrink (their data may be in use): a
// smaller size than the disks already there fails the start, saying so. A
// disk record exists only once its file does; a crash in between leaves a
// file no record names, which the next start reuses under the same name.
func (s *Service) ensureDisks() error {
	var existing []catalog.Disk
	if err := s.cat.View(func(tx *catalog.Tx) error {
		var err error
		existing, err = tx.Disks()
		return err
	}); err != nil {
		return fmt.Errorf("control: disks: %w", err)
	}
	var add []catalog.Disk
	for _, k := range []struct {
		prefix, what, flag string
		size               int64
	}{
		{cacheDiskPrefix, "cache", "--cache-disk-size", s.cacheSize},
		{bufferDiskPrefix, "upload-buffer", "--upload-buffer-disk-size", s.uploadBuffer},
	} {
		var have int64
		var ids []string
		for _, d := range existing {
			if strings.HasPrefix(d.ID, k.prefix) {
				have += d.SizeBytes
				ids = append(ids, d.ID)
			}
		}
		switch {
		case k.size < have:
			return fmt.Errorf("control: the configured %s disk size (%s) is %s, but the %s disks already created (%s) hold %s: "+
				"disks cannot shrink; configure %s or more", k.what, k.flag, formatSize(k.size), k.what, strings.Join(ids, ", "),
				formatSize(have), formatSize(have))
		case k.size > have:
			id := k.prefix + strconv.Itoa(len(ids))
			add = append(add, catalog.Disk{ID: id, Path: filepath.Join(s.diskDir, id+".img"), Node: id + ".img",
				SizeBytes: k.size - have, Allocation: catalog.DiskAvailable})
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := os.MkdirAll(s.diskDir, 0o700); err != nil {
		return fmt.Errorf("control: disk dir: %w", err)
	}
	for _, d := range add {
		f, err := os.OpenFile(d.Path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("control: create disk %s: %w", d.Path, err)
		}
		// Truncate makes a sparse file: no space is used until written.
		err = f.Truncate(d.SizeBytes)
		if serr := f.Sync(); err == nil {
			err = serr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("control: size disk %s: %w", d.Path, err)
		}
		if len(existing) > 0 {
			s.log.Info("start: new local disk for the larger configured size; allocate it with AddCache or AddUploadBuffer",
				"disk", d.ID, "size", formatSize(d.SizeBytes))
		}
	}
	err := s.cat.Update(func(tx *catalog.Tx) error {
		for _, d := range add {
			if err := tx.PutDisk(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("control: disks: %w", err)
	}
	return nil
}

// formatSize writes a byte count as the command line takes it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func engineDisk(d catalog.Disk) Disk {
	use := DiskUseCache
	if d.Allocation == catalog.DiskUploadBuffer {
		use = DiskUseUploadBuffer
	}
	return Disk{ID: d.ID, Path: d.Path, SizeBytes: d.SizeBytes, Use: use}
}

// view and update run fn in a catalog transaction; a domain *Error that fn
// returns comes back unchanged, and an Update that fails keeps nothing.
func (s *Service) view(fn func(*catalog.Tx) error) error   { return s.cat.View(fn) }
func (s *Service) update(fn func(*catalog.Tx) error) error { return s.cat.Update(fn) }
