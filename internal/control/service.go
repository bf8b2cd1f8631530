package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
	if err := s.ensureDefaultDisks(); err != nil {
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
	running := map[string]bool{}
	for _, g := range gateways {
		running[g.ID] = g.State == catalog.GatewayRunning
	}
	for _, v := range volumes {
		if !running[v.GatewayID] {
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

// ensureDefaultDisks creates the appliance's disk files and records on the
// first start. A disk record exists only once its file does.
func (s *Service) ensureDefaultDisks() error {
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
	if err := os.MkdirAll(s.diskDir, 0o700); err != nil {
		return fmt.Errorf("control: disk dir: %w", err)
	}
	defaults := []catalog.Disk{
		{ID: "cache0", Path: filepath.Join(s.diskDir, "cache0.img"), Node: "cache0.img", SizeBytes: s.cacheSize},
		{ID: "buffer0", Path: filepath.Join(s.diskDir, "buffer0.img"), Node: "buffer0.img", SizeBytes: s.uploadBuffer},
	}
	for i := range defaults {
		d := &defaults[i]
		d.Allocation = catalog.DiskAvailable
		f, err := os.OpenFile(d.Path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("control: create disk %s: %w", d.Path, err)
		}
		// Truncate makes a sparse file: no space is used until written.
		err = f.Truncate(d.SizeBytes)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("control: size disk %s: %w", d.Path, err)
		}
	}
	return s.cat.Update(func(tx *catalog.Tx) error {
		for _, d := range defaults {
			if err := tx.PutDisk(d); err != nil {
				return err
			}
		}
		return nil
	})
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
