package volume

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/seal"
)

// Config configures an Engine.
type Config struct {
	// Dir is the engine's state directory inside the data dir (the journal
	// superblock and the list of local volumes and disks live here).
	Dir string
	// Store is the object store: the durable truth.
	Store blob.Store
	// Prefix is prepended to every object key ("" for none; a '/' is added
	// if missing).
	Prefix string
	// CutInterval is how often dirty volumes are cut and uploaded. Zero
	// means 5s; negative disables periodic cuts (cuts then happen on
	// demand, under journal or cache pressure, and for snapshots).
	CutInterval time.Duration
	// DirtyBlocksCut starts a cut when a volume has this many dirty blocks.
	// Zero means a quarter of the cache slots, once dirty blocks hold half
	// of them (dirtyDue).
	DirtyBlocksCut int
	// GCGrace is the garbage collector's grace period G (see gc.go): an
	// object named by nothing is reclaimed by the first round at least G
	// after it was last written. Zero means DefaultGCGrace. Operations
	// that name existing objects must finish within G/2 (their lease) or
	// are abandoned and retried, except cuts, which keep their objects
	// protected by checkpoints however long they run (gclease.go). Every
	// gateway sharing a store must use the same G: a round with a shorter
	// one than another gateway's leases assume may sweep its work.
	GCGrace time.Duration
	// GCInterval runs GC in the background this often; zero disables it.
	GCInterval time.Duration
	// GCClockSkew is how far the store's clock (its objects' ModTimes) and
	// the engine's may disagree before a GC round refuses to delete
	// anything (gc.go). Zero means G/10 when Now is the real clock; with
	// an injected Now (simulations age objects by moving it) the check is
	// off unless this is set. Negative turns it off.
	GCClockSkew time.Duration
	// UploadConcurrency bounds the PUTs of blocks and pages in flight,
	// for the whole engine: every cut of every volume shares it, and so
	// does the memory of the uploads (one 512 KiB buffer per PUT, plus
	// two). Default 8.
	UploadConcurrency int
	// ParallelCuts is how many volumes are cut and uploaded at once by the
	// background uploader (default 4; one cut per volume at a time). They
	// share UploadConcurrency.
	ParallelCuts int
	// Now is the clock (default time.Now). GC compares it with the store's
	// object times, so it must agree with the store's clock.
	Now func() time.Time
	// Logger receives operational messages (default slog.Default()).
	Logger *slog.Logger
	// ScrubRate bounds the maintenance scrub's cache reads, in bytes per
	// second (maintenance.go): zero means 64 MiB/s, negative no bound.
	ScrubRate int64
	// RecoveryPointRetention keeps every recovery point of a live volume
	// in the volume's history for this long after it stopped being the
	// volume's state (retention.go); zero keeps only the latest, as AWS
	// does. Recorded in each root, so any gateway's GC honours it.
	RecoveryPointRetention time.Duration
	// Keys is the keyring volumes are sealed with (sealing.go); nil holds
	// none: volumes are stored clear unless created with a key, which is
	// then refused.
	Keys *seal.Keyring
	// Compress compresses blocks and pages (zstd) before they are
	// uploaded, when that saves at least 1/32 of them.
	Compress bool
	// WholeBlocks stores every changed block whole: no patches (patch.go).
	// Pages then stay readable by volgw releases from before patches.
	WholeBlocks bool
}

// Engine is the block engine: volumes, their journal and cache, and their
// recovery points and snapshots in the object store. All methods are safe
// for concurrent use.
type Engine struct {
	cfg   Config
	store blob.Store
	log   *slog.Logger
	now   func() time.Time
	jr    *journal
	cache *cache
	pages *pageCache
	// ebs is what the EBS direct APIs keep in memory (snapshotblocks.go).
	ebs ebsState
	// uploads bounds the PUTs and buffers of every cut (upload.go).
	uploads *uploadPool

	// ioGate is held shared by every journal append and exclusively while
	// the journal's disk layout changes.
	ioGate sync.RWMutex

	mu sync.Mutex // guards state, vols, closed
	// state mirrors state.json; vols holds the open volumes by ID.
	state  localState
	vols   map[string]*Volume
	closed bool
	// volsView is a copy of vols, replaced (publishVols) whenever vols
	// changes: Volume reads it without e.mu, which is held across the
	// fsyncs of saveState.
	volsView atomic.Pointer[map[string]*Volume]

	kick     chan struct{}
	pressure chan struct{}
	// done is closed by Close: writers waiting for journal or cache space
	// give up with ErrClosed instead of waiting for an uploader that stopped.
	done     chan struct{}
	isClosed atomic.Bool
	stop     context.CancelFunc
	wg       sync.WaitGroup
	// fetches shares GETs of one block between concurrent fetchers;
	// fetchCtx, cancelled as the engine's files close, is the context
	// those GETs run on (readahead.go). raSem bounds read-ahead GETs.
	fetches     fetches
	fetchCtx    context.Context
	fetchCancel context.CancelFunc
	raSem       chan struct{}
	// cutSeconds and syncSeconds time published cuts and journal
	// fdatasyncs for /metrics (metrics.go).
	cutSeconds, syncSeconds prometheus.Histogram
	// replaying is set while Open replays the journal (single goroutine),
	// and replayLSN is the record being applied: a cut forced by a full
	// cache during replay is cut there.
	// Also set while AddDisk rebuilds volumes after ResetCache
	// (cachereset.go), with every journal append held off (ioGate).
	replaying atomic.Bool
	replayLSN atomic.Uint64
	// cacheDown is set while the cache cannot serve (a cache disk failed,
	// or ResetCache removed them): every volume's I/O is refused
	// (cachereset.go). resetMu guards cacheUp, cancelled when the cache
	// goes down, to end the cuts in flight and the writers waiting for
	// space that only cuts would free.
	cacheDown   atomic.Pointer[cacheDown]
	resetMu     sync.Mutex
	cacheUp     context.Context
	cacheUpStop context.CancelFunc
	// scrubbed counts what maintenance scrubs found (maintenance.go).
	scrubbed scrubStats

	// ledgerMu serializes ledger writes (ledger.go); it is taken before
	// any volume lock. It guards the three fields below.
	ledgerMu     sync.Mutex
	ledger       ledgerFile
	ledgerHead   uint64 // high-water of LSNs used, persisted in the ledger
	ledgerSynced uint64 // the journal's synced head when last written
	// Volumes found damaged at Open since the process started, by status.
	lostIrrecoverable, lostPassThrough atomic.Int64
	// atomicBytes is maxAtomic, set when a disk is added.
	atomicBytes atomic.Int64
	// lastGC is what the last completed GC round found the store to hold
	// (nil before one); gcReclaimed counts the block bytes GC deleted.
	lastGC      atomic.Pointer[gcRound]
	gcReclaimed atomic.Int64
	// uploadedPlain and uploadedStored count the blocks and pages this
	// engine uploaded, as written and as stored (compressed, sealed).
	uploadedPlain, uploadedStored atomic.Int64
	// blocksStored and patchesStored count the blocks cuts stored whole
	// and as patches (patch.go).
	blocksStored, patchesStored atomic.Int64
	// packsStored and packsRepacked count the packs cuts stored with their
	// own patches and with patches repacked; patchesRepacked the patches
	// copied, repackSkipped those left where they were, damaged (pack.go).
	packsStored, packsRepacked, patchesRepacked, repackSkipped atomic.Int64
	// gcRefused counts GC rounds that deleted nothing because the store's
	// clock and the engine's disagreed (gc.go); gcSkew is the last
	// disagreement measured, in nanoseconds (store minus engine).
	gcRefused atomic.Int64
	gcSkew    atomic.Int64
	gcSkewSet atomic.Bool
}

var (
	_ control.VolumeEngine         = (*Engine)(nil)
	_ control.CacheReporter        = (*Engine)(nil)
	_ control.UploadBufferReporter = (*Engine)(nil)
)

// CacheStats implements control.CacheReporter from counters the cache keeps
// as it goes (no walk over slots or volumes): used is slots holding data,
// dirty is slots holding blocks not yet uploaded (dirty or frozen), hit and
// miss are the shares of read block lookups since Open served from a slot
// or fetched from the object store.
func (e *Engine) CacheStats(ctx context.Context) (control.CacheStats, error) {
	if e.isClosed.Load() {
		return control.CacheStats{}, ErrClosed
	}
	return e.cache.stats(), nil
}

// UploadBufferUsedBytes implements control.UploadBufferReporter: the
// journal bytes between its tail and head, i.e. records some volume still
// needs because the cut covering them is not yet published.
func (e *Engine) UploadBufferUsedBytes(ctx context.Context) (int64, error) {
	if e.isClosed.Load() {
		return 0, ErrClosed
	}
	used, _ := e.jr.usage()
	return used, nil
}

type localState struct {
	// Gen counts saves: of the two copies (loadState), the higher wins.
	Gen     uint64         `json:"gen"`
	Owner   string         `json:"owner"`
	Disks   []control.Disk `json:"disks"`
	Volumes []volState     `json:"volumes"`
}

type volState struct {
	ID      string    `json:"id"`
	Size    int64     `json:"size"`
	Nonce   uint64    `json:"nonce"`
	Created time.Time `json:"created"`
	// Key names the keyring key the volume's objects are sealed with (""
	// for none); fixed at creation (sealing.go).
	Key string `json:"key,omitempty"`
}

// Open opens (or creates) the engine in cfg.Dir, reopens the disks recorded
// there, replays the journal over each volume's published root and starts
// the uploader. Close stops it.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Dir == "" {
		return nil, errors.New("volume: Config needs Dir and Store")
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.CutInterval == 0 {
		cfg.CutInterval = 5 * time.Second
	}
	if cfg.GCGrace <= 0 {
		cfg.GCGrace = DefaultGCGrace
	}
	if cfg.GCClockSkew == 0 && cfg.Now == nil {
		cfg.GCClockSkew = cfg.GCGrace / 10
	}
	if cfg.GCClockSkew > cfg.GCGrace/5 {
		// The cuts' margins (gclease.go) would not cover it.
		return nil, fmt.Errorf("volume: GCClockSkew %v is over a fifth of GCGrace %v", cfg.GCClockSkew, cfg.GCGrace)
	}
	if cfg.UploadConcurrency <= 0 {
		cfg.UploadConcurrency = 8
	}
	if cfg.ParallelCuts <= 0 {
		cfg.ParallelCuts = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("volume: state dir: %w", err)
	}
	e := &Engine{
		cfg: cfg, store: leaseStore{prefixed{cfg.Store, cfg.Prefix}}, log: cfg.Logger, now: cfg.Now,
		cache: newCache(), pages: newPageCache(128), vols: make(map[string]*Volume), uploads: newUploadPool(cfg.UploadConcurrency),
		kick: make(chan struct{}, 1), pressure: make(chan struct{}, 1), done: make(chan struct{}),
		raSem: make(chan struct{}, raFetches),
		cutSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "volgw_cut_duration_seconds",
			Help:    "Time from a cut's freeze until its recovery point is published (blocks, pages, root, head uploaded).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		syncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "volgw_journal_fsync_duration_seconds",
			Help:    "Time of one fdatasync of the upload buffer (shared by the flushes waiting for it).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
	}
	e.fetchCtx, e.fetchCancel = context.WithCancel(context.Background())
	e.cache.onFault = e.noteCacheFault
	e.cacheUp, e.cacheUpStop = context.WithCancel(context.Background())
	if err := e.loadState(); err != nil {
		return nil, err
	}
	jr, err := openJournal(cfg.Dir, e.done)
	if err != nil {
		return nil, err
	}
	e.jr = jr
	jr.syncSeconds = e.syncSeconds
	for _, d := range e.state.Disks {
		if err := e.openDisk(d); err != nil {
			e.closeFiles()
			return nil, err
		}
	}
	if len(jr.disks) > 0 && !jr.layoutMatches() {
		// A new layout is only ever adopted after a drain (AddDisk), so the
		// journal held nothing needed when the disks changed.
		if err := jr.relayout(); err != nil {
			e.closeFiles()
			return nil, err
		}
	}
	if err := e.recover(ctx); err != nil {
		e.closeFiles()
		return nil, err
	}
	if err := e.judgeJournal(ctx); err != nil {
		e.closeFiles()
		return nil, err
	}
	jr.startInit(e.log) // the ring's head is known now (ringinit.go)
	bg, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	e.wg.Add(1)
	go func() {
		// Listing every snapshot can take a while on a big store: do it in
		// the background rather than delaying Open.
		if err := e.resumeSnapshots(bg); err != nil && bg.Err() == nil {
			e.log.Warn("volume: resuming pending snapshots", "err", err)
		}
		e.uploader(bg)
	}()
	if cfg.GCInterval > 0 {
		e.wg.Add(1)
		go e.gcLoop(bg)
	}
	return e, nil
}

// loadState reads the engine's state. It is kept twice, in state.json and
// state.copy.json (written one after the other, each atomically, and only
// when disks or volumes change), so that one lost or damaged file is
// rebuilt from the other. With both gone, a data dir that shows it was in
// use (a journal superblock or volume files) is refused: starting over with
// a new owner would forget every volume and the writes its upload buffer
// still holds.
func (e *Engine) loadState() error {
	var got []localState
	var bad []string
	for _, name := range stateFiles {
		path := filepath.Join(e.cfg.Dir, name)
		b, err := os.ReadFile(path)
		var st localState
		switch {
		case err == nil:
			if err := json.Unmarshal(b, &st); err != nil || st.Owner == "" {
				bad = append(bad, fmt.Sprintf("%s is damaged (%v)", path, err))
				continue
			}
			got = append(got, st)
		case os.IsNotExist(err):
			bad = append(bad, path+" is missing")
		default:
			return fmt.Errorf("volume: reading state: %w", err)
		}
	}
	if len(got) == 0 {
		if evidence := e.usedDataDir(); evidence != "" {
			return fmt.Errorf("%w: %s, but %s: this data dir was in use. Refusing to start afresh, which would forget its volumes "+
				"and the writes its upload buffer holds. Restore %s from a backup of this data dir; or, to give up what it holds "+
				"(its volumes become unusable here, writes not yet uploaded are lost), move %s aside and start again",
				ErrStateLost, strings.Join(bad, " and "), evidence, filepath.Join(e.cfg.Dir, stateFiles[0]), e.cfg.Dir)
		}
		e.state = localState{Owner: "gw-" + randomHex(8)}
		return e.saveState()
	}
	e.state = got[0]
	for _, st := range got[1:] {
		if st.Gen > e.state.Gen {
			e.state = st
		}
	}
	if len(bad) > 0 || (len(got) == 2 && got[0].Gen != got[1].Gen) {
		// A crash between the two writes leaves them one generation
		// apart; anything else is damage worth an ERROR.
		upgrade := len(got) == 1 && got[0].Gen == 0 // written before the copy existed
		if !upgrade && (len(bad) > 0 || max(got[0].Gen, got[1].Gen)-min(got[0].Gen, got[1].Gen) > 1) {
			e.log.Error("volume: engine state was damaged; rebuilt from its other copy", "problems", strings.Join(bad, "; "), "generation", e.state.Gen)
		}
		e.state.Gen-- // saveState writes this generation again
		return e.saveState()
	}
	return nil
}

// stateFiles are the two copies of the engine's state.
var stateFiles = [2]string{"state.json", "state.copy.json"}

// usedDataDir says what shows that the engine's directory was in use, or "".
func (e *Engine) usedDataDir() string {
	var ev []string
	if _, err := os.Stat(filepath.Join(e.cfg.Dir, "journal.json")); err == nil {
		ev = append(ev, filepath.Join(e.cfg.Dir, "journal.json")+" exists")
	}
	if ids, _ := e.volFileIDs(); len(ids) > 0 {
		ev = append(ev, fmt.Sprintf("%s holds %d volume files", filepath.Join(e.cfg.Dir, "volumes"), len(ids)))
	}
	return strings.Join(ev, " and ")
}

// saveState persists e.state to both copies, one after the other; e.mu
// held (or single-threaded in Open).
func (e *Engine) saveState() error {
	e.state.Gen++
	b, _ := json.MarshalIndent(e.state, "", "  ")
	for _, name := range stateFiles {
		if err := writeFileAtomic(filepath.Join(e.cfg.Dir, name), b); err != nil {
			return err
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("volume: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

func randomNonce() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("volume: crypto/rand: %v", err))
	}
	return binary.LittleEndian.Uint64(b[:]) | 1 // never 0
}

func (e *Engine) openDisk(d control.Disk) error {
	var err error
	switch d.Use {
	case control.DiskUseCache:
		err = e.cache.addDisk(d.Path, d.SizeBytes)
	case control.DiskUseUploadBuffer:
		err = e.jr.addDisk(d.Path, d.SizeBytes)
	default:
		return fmt.Errorf("volume: disk %s has unknown use %q", d.ID, d.Use)
	}
	e.setMaxAtomic()
	return err
}

// AddDisk implements control.VolumeEngine. Adding an upload-buffer disk
// drains the journal first (every volume is cut and published) because the
// ring's layout may only change while it holds nothing needed.
func (e *Engine) AddDisk(ctx context.Context, d control.Disk) error {
	if d.SizeBytes <= 0 || d.Path == "" {
		return fmt.Errorf("volume: disk %q needs a path and a size", d.ID)
	}
	e.mu.Lock()
	var known, clash bool
	for _, x := range e.state.Disks {
		if x.Path == d.Path {
			known = x.SizeBytes == d.SizeBytes && x.Use == d.Use
			clash = !known
		}
	}
	e.mu.Unlock()
	if clash {
		// Mapping one file twice (or resizing a ring in place) would let
		// two slot ranges or two journal layouts overlap.
		return fmt.Errorf("volume: disk %s is already in use with another size or use", d.Path)
	}
	if known {
		// Already opened (by Open, or by an AddDisk whose rebuild after
		// ResetCache failed: it is tried again).
		return e.rebuildAfterReset(ctx)
	}
	if d.Use == control.DiskUseUploadBuffer {
		e.ioGate.Lock()
		defer e.ioGate.Unlock()
		if err := e.drain(ctx); err != nil {
			return err
		}
	}
	if err := e.openDisk(d); err != nil {
		return err
	}
	e.mu.Lock()
	e.state.Disks = append(e.state.Disks, d)
	err := e.saveState()
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if d.Use == control.DiskUseUploadBuffer {
		if err := e.jr.relayout(); err != nil {
			return err
		}
		e.jr.startInit(e.log)
		return nil
	}
	// A cache disk after ResetCache: rebuild the volumes (cachereset.go).
	return e.rebuildAfterReset(ctx)
}

// drain cuts every volume until the journal holds nothing needed.
func (e *Engine) drain(ctx context.Context) error {
	for _, v := range e.volumes() {
		if err := e.cutVolume(ctx, v, true); err != nil && !errors.Is(err, control.ErrVolumeNotFound) {
			return err
		}
	}
	e.releaseJournal()
	e.jr.mu.Lock()
	empty := e.jr.tail == e.jr.head
	e.jr.mu.Unlock()
	if !empty {
		return errors.New("volume: journal did not drain")
	}
	return nil
}

func (e *Engine) volumes() []*Volume {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Volume, 0, len(e.vols))
	for _, v := range e.vols {
		out = append(out, v)
	}
	return out
}

// Volume returns an open volume; it serves the iSCSI target directly. It
// takes no lock.
func (e *Engine) Volume(id string) (*Volume, error) {
	if e.isClosed.Load() {
		return nil, ErrClosed
	}
	if m := e.volsView.Load(); m != nil {
		if v, ok := (*m)[id]; ok {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", control.ErrVolumeNotFound, id)
}

// publishVols replaces volsView with a copy of vols; e.mu held (or Open,
// alone). Volumes come and go rarely: copying is cheaper than a lock on
// every lookup.
func (e *Engine) publishVols() {
	m := make(map[string]*Volume, len(e.vols))
	for id, v := range e.vols {
		m[id] = v
	}
	e.volsView.Store(&m)
}

// recover loads each local volume's published root and replays the journal
// over it: records before the root's cut are already in it and are skipped,
// later ones make their blocks dirty again exactly as before the crash.
func (e *Engine) recover(ctx context.Context) error {
	if err := e.resolveIntents(ctx); err != nil {
		return err
	}
	byNonce := make(map[uint64]*Volume)
	for _, vs := range e.state.Volumes {
		v, err := newVolume(e, vs)
		if err != nil {
			return err
		}
		if err := e.recoverHead(ctx, v); err != nil {
			return fmt.Errorf("volume: recovering %s: %w", vs.ID, err)
		}
		e.vols[vs.ID] = v
		// A fenced volume's journal records are replayed too, over its own
		// last root: reads return what this data dir holds.
		byNonce[vs.Nonce] = v
	}
	e.publishVols()
	if e.cache.nslots() == 0 && len(byNonce) > 0 {
		// No cache disk (ResetCache, then a restart): nothing can be
		// rebuilt until AddCache; the journal keeps what it holds.
		return e.holdWithoutCache(byNonce)
	}
	e.replaying.Store(true)
	defer e.replaying.Store(false)
	n := 0
	err := e.jr.replay(func(r *record) error {
		v := byNonce[r.nonce]
		if v == nil || r.lsn < v.base.JournalLSN {
			return nil
		}
		e.replayLSN.Store(r.lsn)
		n++
		return e.replayFenced(v, v.replay(ctx, r), byNonce)
	})
	if err != nil {
		return fmt.Errorf("volume: journal replay: %w", err)
	}
	if n > 0 {
		e.log.Info("volume: journal replayed", "records", n)
	}
	// A volume the journal left nothing dirty in holds, in its published
	// root, every write ever acknowledged: it is consistent as of now, so
	// its recovery point does not fall back to the last cut's time across
	// a restart. One with replayed writes reports its last cut (true, if
	// earlier than what it reported before the crash) until its next cut.
	for _, v := range byNonce {
		v.mu.Lock()
		v.noteClean()
		v.mu.Unlock()
	}
	return nil
}

// replayFenced keeps a fenced volume's replay failure (it cannot cut to
// free cache slots) from failing Open: the volume stops being replayed and
// refuses reads, which would miss what the rest of its journal holds.
func (e *Engine) replayFenced(v *Volume, err error, byNonce map[uint64]*Volume) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err == nil || v.fenced == nil {
		return err
	}
	delete(byNonce, v.nonce)
	v.readErr = fmt.Errorf("%w: its journal could not be replayed: %v", v.fenced, err)
	e.log.Error("volume: fenced volume's journal not replayed; its reads are refused", "volume", v.id, "err", err)
	return nil
}

// recoverHead sets the volume's base from its head, or fences it (see
// fence.go) if the head is not this data dir's.
func (e *Engine) recoverHead(ctx context.Context, v *Volume) error {
	base, etag, fenced, err := e.openHead(ctx, v)
	if err != nil {
		return err
	}
	if base == nil {
		base = &root{Volume: v.id, Size: v.size, Owner: e.state.Owner, Pages: map[uint32]pageRef{}}
		v.baseLost, v.unknown = true, map[uint64]bool{}
		fenced += "; this data dir's last recovery point is gone from the object store, only what its journal holds can be read"
	}
	v.base, v.headETag = base, etag
	v.publishRecovery()
	if fenced != "" {
		e.fence(v, fenced)
	}
	return nil
}

// Close stops the uploader and closes the disks. Acknowledged writes stay in
// the journal and are replayed by the next Open.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.isClosed.Store(true)
	close(e.done)
	e.mu.Unlock()
	e.stop()
	e.wg.Wait()
	if err := e.closeFiles(); err != nil {
		return err
	}
	return e.closeLedger()
}

func (e *Engine) closeFiles() error {
	e.fetchCancel()
	return errors.Join(e.jr.close(), e.cache.close())
}

// wake asks the uploader to look at the volumes now.
func (e *Engine) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// underPressure asks the uploader to cut every dirty volume now: the
// journal or the cache is filling up.
func (e *Engine) underPressure() {
	select {
	case e.pressure <- struct{}{}:
	default:
	}
}

// CreateVolume implements control.VolumeEngine. The volume's first root is
// published before the volume is recorded locally, so the store always
// holds a recovery point for a volume the engine knows: for a new empty
// volume its creation time, for a clone the source's cut.
func (e *Engine) CreateVolume(ctx context.Context, spec control.VolumeSpec) error {
	if spec.SizeBytes < MinVolumeSize || spec.SizeBytes > MaxVolumeSize || spec.SizeBytes%512 != 0 {
		return fmt.Errorf("%w: %d bytes", ErrInvalidSize, spec.SizeBytes)
	}
	if spec.VolumeID == "" || !blobSafe(spec.VolumeID) {
		return fmt.Errorf("volume: bad volume ID %q", spec.VolumeID)
	}
	e.mu.Lock()
	_, exists := e.vols[spec.VolumeID]
	noDisks := len(e.jr.disks) == 0 || e.cache.nslots() == 0
	e.mu.Unlock()
	if exists {
		return fmt.Errorf("%w: %s", ErrVolumeExists, spec.VolumeID)
	}
	if noDisks {
		return ErrNoDisks
	}
	if adopted, err := e.adoptCreate(ctx, spec); adopted || err != nil {
		return err
	}
	keyName, err := e.keyForNew(spec.KMSKey)
	if err != nil {
		return err
	}
	w, err := e.writerFor(keyName)
	if err != nil {
		return err
	}
	start := e.now()
	token := newToken()
	r := &root{Volume: spec.VolumeID, Size: spec.SizeBytes, CutTime: start, Owner: e.state.Owner, Token: token, JournalLSN: e.jr.headLSN(), Pages: map[uint32]pageRef{}, Retain: e.cfg.RecoveryPointRetention}
	var src *root
	switch {
	case spec.Source.SnapshotID != "":
		rec, _, err := e.getRecord(ctx, spec.Source.SnapshotID)
		if err != nil {
			return err
		}
		if rec.Deleted || rec.Status != string(control.SnapshotCompleted) {
			return fmt.Errorf("%w: %s is %s", control.ErrSnapshotNotFound, rec.ID, rec.Status)
		}
		if src, err = e.loadRoot(ctx, rec.Root); err != nil {
			return err
		}
	case spec.Source.SourceVolumeID != "":
		sv, err := e.Volume(spec.Source.SourceVolumeID)
		if err != nil {
			return err
		}
		// Holding the source's cut lock keeps its root the head until the
		// clone's head names the same pages (GC rule G3a).
		sv.cutMu.Lock()
		defer sv.cutMu.Unlock()
		sv.mu.Lock()
		var fenced error
		src, fenced = sv.base, sv.fenced
		sv.mu.Unlock()
		if fenced != nil {
			// Its root is not the volume as this data dir holds it.
			return fenced
		}
	}
	if src != nil {
		if src.Size > spec.SizeBytes {
			return fmt.Errorf("%w: %d bytes is smaller than the source's %d", ErrTooSmall, spec.SizeBytes, src.Size)
		}
		for i, p := range src.Pages {
			r.Pages[i] = p
		}
		// The clone's recovery point is its creation: it holds the source's
		// data, all of which is in the store.
	}
	if err := e.putRoot(ctx, w, r, blob.PutOptions{}); err != nil {
		return err
	}
	if e.now().Sub(start) > e.lease() {
		return fmt.Errorf("%w: creating %s", ErrLeaseExpired, spec.VolumeID)
	}
	// The intent, before the head: a crash or a lost answer after the PUT
	// leaves a head this data dir recognises as its own (resolveIntents at
	// Open, adoptCreate on a retry) rather than one nobody can open or
	// create again.
	vs := volState{ID: spec.VolumeID, Size: spec.SizeBytes, Nonce: randomNonce(), Created: start, Key: keyName}
	vf := volFile{Volume: vs, Owner: e.state.Owner, Token: token, NextToken: token}
	if err := e.writeVolFile(&vf); err != nil {
		return err
	}
	hb, _ := json.Marshal(head{Seq: 0, Owner: e.state.Owner, Token: token})
	info, err := e.store.Put(ctx, headKey(spec.VolumeID), hb, blob.PutOptions{IfNoneMatch: true})
	if errors.Is(err, blob.ErrPreconditionFailed) {
		// Ours, if a retry of the PUT after a lost answer found it.
		h, etag, herr := e.getHead(ctx, spec.VolumeID)
		if herr != nil || h.Token != token || h.Deleted {
			return errors.Join(fmt.Errorf("%w: %s exists in the object store", ErrVolumeExists, spec.VolumeID), e.removeVolFile(spec.VolumeID))
		}
		info.ETag, err = etag, nil
	}
	if err != nil {
		return fmt.Errorf("volume: creating %s: %w", spec.VolumeID, err)
	}
	v, err := newVolume(e, vs)
	if err != nil {
		return err
	}
	v.base, v.headETag, v.vf = r, info.ETag, vf
	v.publishRecovery()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state.Volumes = append(e.state.Volumes, vs)
	if err := e.saveState(); err != nil {
		e.state.Volumes = e.state.Volumes[:len(e.state.Volumes)-1]
		return err
	}
	e.vols[vs.ID] = v
	e.publishVols()
	if src != nil {
		e.startRestoreLocked(v)
	}
	return nil
}

// deleteHead replaces the volume's head with a tombstone. v.cutMu held.
func (e *Engine) deleteHead(ctx context.Context, v *Volume, base *root, etag string) error {
	token := newToken()
	if v.vf.Deleting {
		token = v.vf.NextToken // an earlier attempt's PUT may have landed
	}
	if err := e.notePublishing(v, base, base.Seq, token, true); err != nil {
		return err
	}
	hb, _ := json.Marshal(head{Seq: base.Seq, Owner: e.state.Owner, Token: token, Deleted: true, DeletedAt: e.now().UTC()})
	_, err := e.store.Put(ctx, headKey(v.id), hb, blob.PutOptions{IfMatch: etag})
	if errors.Is(err, blob.ErrPreconditionFailed) {
		h, _, herr := e.getHead(ctx, v.id)
		switch {
		case herr != nil:
			return fmt.Errorf("volume: deleting %s: %w", v.id, herr)
		case h.Deleted && h.Token == token:
			return nil // our PUT landed; its retry found it
		default:
			e.fence(v, fmt.Sprintf("deleting: the head is now seq %d of %q (token %q), not this data dir's", h.Seq, h.Owner, h.Token))
			return nil // not ours to delete any more: drop it locally
		}
	}
	if err != nil {
		return fmt.Errorf("volume: deleting %s: %w", v.id, err)
	}
	return nil
}

func blobSafe(id string) bool {
	return blob.ValidateKey("volumes/"+id+"/head") == nil && !strings.Contains(id, "/")
}

// DeleteVolume implements control.VolumeEngine: the head becomes a
// tombstone, local state goes, and GC later reclaims blocks that no
// snapshot uses.
func (e *Engine) DeleteVolume(ctx context.Context, volumeID string) error {
	v, err := e.Volume(volumeID)
	if err != nil {
		return err
	}
	v.cutMu.Lock()
	defer v.cutMu.Unlock()
	v.mu.Lock()
	if v.deleted {
		v.mu.Unlock()
		return fmt.Errorf("%w: %s", control.ErrVolumeNotFound, volumeID)
	}
	base, etag, fenced := v.base, v.headETag, v.fenced
	v.mu.Unlock()
	if fenced == nil {
		// The tombstone's token is recorded first, so a crash after its
		// PUT completes the delete at Open (resolveIntents).
		if err := e.deleteHead(ctx, v, base, etag); err != nil {
			return err
		}
	}
	e.mu.Lock()
	delete(e.vols, volumeID)
	e.publishVols()
	e.state.Volumes = slices.DeleteFunc(e.state.Volumes, func(s volState) bool { return s.ID == volumeID })
	err = e.saveState()
	e.mu.Unlock()
	if err == nil {
		err = e.removeVolFile(volumeID)
	}
	v.mu.Lock()
	v.deleted = true
	v.dropAll()
	v.mu.Unlock()
	e.releaseJournal()
	return err
}

// Cut forces a cut of the volume now and waits until it is published (or
// fails). Nothing to upload is not an error.
func (e *Engine) Cut(ctx context.Context, volumeID string) error {
	v, err := e.Volume(volumeID)
	if err != nil {
		return err
	}
	return e.cutVolume(ctx, v, false)
}

// DefaultGCGrace is the grace period G when Config.GCGrace is zero: an
// object nothing names is reclaimed minutes after it was superseded, while
// a single PUT or a publication (a root then its head) has L = G/2 to land.
const DefaultGCGrace = 5 * time.Minute

func (e *Engine) lease() time.Duration { return e.cfg.GCGrace / 2 }

// gcSkewLimit is the disagreement between the store's clock and the
// engine's that the GC rules absorb: the clock check refuses rounds beyond
// it, and a cut's lease checks keep it as a margin (gclease.go). At least
// G/10 even when the check is off, so a cut's checks keep a margin.
func (e *Engine) gcSkewLimit() time.Duration {
	return max(e.cfg.GCClockSkew, e.cfg.GCGrace/10)
}

// releaseJournal moves the journal tail to the oldest record some volume
// still needs. The head is read first: a record appended after that read has
// a larger LSN, so it cannot be released by mistake.
func (e *Engine) releaseJournal() {
	if e.replaying.Load() {
		return // records after the one being replayed are still needed
	}
	tail := e.jr.headLSN()
	for _, v := range e.volumes() {
		v.mu.Lock()
		tail = min(tail, v.dirtyFrom, v.frozenFrom, v.holdFrom)
		v.mu.Unlock()
	}
	if err := e.jr.release(tail); err != nil {
		e.log.Error("volume: persisting journal tail", "err", err)
	}
}
