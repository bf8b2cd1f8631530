package catalogmirror

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/catalog"
	"github.com/volgw/volgw/internal/seal"
)

// DB is the catalog as the mirror needs it; *catalog.DB implements it.
type DB interface {
	View(fn func(*catalog.Tx) error) error
	Update(fn func(*catalog.Tx) error) error
}

// Config is what a Mirror needs.
type Config struct {
	DB    DB
	Store blob.Store
	// Secret is the API secret access key; CHAP secrets in the copy are
	// sealed with a key derived from it. AccessKeyID is recorded next to
	// them, to tell a rebuild whose secret it needs.
	Secret      []byte
	AccessKeyID string
	// Keys is the gateway's keyring. When it has a default key, the whole
	// copy is sealed with it; any key of it opens a sealed copy. Nil, or no
	// default key: the copy is written in clear (CHAP secrets aside).
	Keys *seal.Keyring
	// Timeout bounds each write of the copy (Update has no context of its
	// own); 0 means one minute.
	Timeout time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Mirror is the catalog with its copy in the object store kept up to date:
// it implements control.Catalog. See the package documentation for the
// invariant it keeps.
type Mirror struct {
	db      DB
	store   blob.Store
	seal    *sealer
	keys    *seal.Keyring
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger

	// mu guards written and orders the copies' writes like the commits
	// they describe (bbolt serialises Updates too; mu makes the order of
	// the bookkeeping explicit rather than borrowed).
	mu sync.Mutex
	// written is the digest of the contents last written for each
	// gateway, and committed; an Update whose contents match writes
	// nothing.
	written map[string][32]byte
}

// New returns a Mirror over cfg.DB. Call Sync before serving.
func New(cfg Config) (*Mirror, error) {
	if cfg.DB == nil || cfg.Store == nil || len(cfg.Secret) == 0 {
		return nil, errors.New("catalogmirror: DB, Store and Secret are required")
	}
	s, err := newSealer(cfg.Secret, cfg.AccessKeyID, nil)
	if err != nil {
		return nil, err
	}
	m := &Mirror{db: cfg.DB, store: cfg.Store, seal: s, keys: cfg.Keys, timeout: cfg.Timeout, now: cfg.Now, log: cfg.Logger,
		written: map[string][32]byte{}}
	if m.timeout <= 0 {
		m.timeout = time.Minute
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m, nil
}

// View runs fn in a read-only catalog transaction; reads need no copy.
func (m *Mirror) View(fn func(*catalog.Tx) error) error { return m.db.View(fn) }

// Update runs fn in a read-write catalog transaction and, if fn succeeds,
// writes the copy of the resulting catalog to the store before the
// transaction commits. If that write fails, nothing is committed and the
// error is returned.
func (m *Mirror) Update(fn func(*catalog.Tx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	var (
		fnFailed, storeTouched bool
		pending                map[string][32]byte
	)
	err := m.db.Update(func(tx *catalog.Tx) error {
		before, err := tx.Gateways()
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			fnFailed = true
			return err
		}
		c, err := tx.Contents()
		if err != nil {
			return err
		}
		d, err := digest(c)
		if err != nil {
			return err
		}
		pending = map[string][32]byte{}
		changed := false
		for _, g := range c.Gateways {
			pending[g.ID] = d
			old, ok := m.written[g.ID]
			changed = changed || !ok || old != d
		}
		if changed {
			// The copy and the catalog move to the next generation
			// together: the copy is written first, the catalog commits it.
			c.Generation++
			if err := tx.SetGeneration(c.Generation); err != nil {
				return err
			}
			for _, g := range c.Gateways {
				storeTouched = true
				if err := m.put(ctx, g.ID, c); err != nil {
					return err
				}
			}
		}
		for _, g := range before {
			if _, still := pending[g.ID]; still {
				continue
			}
			storeTouched = true
			if err := m.store.Delete(ctx, Key(g.ID)); err != nil {
				return fmt.Errorf("catalogmirror: delete the copy of deleted gateway %s: %w", g.ID, err)
			}
		}
		return nil
	})
	switch {
	case err == nil:
		m.written = pending
	case !fnFailed && storeTouched:
		// Either the store refused (the copy is as before, or the write
		// failed part-way over several gateways) or the commit failed after
		// the copy was written: in both cases the copy may no longer match
		// the catalog. Write the committed state back now.
		m.written = map[string][32]byte{}
		sctx, scancel := context.WithTimeout(context.Background(), m.timeout)
		defer scancel()
		if serr := m.syncLocked(sctx); serr != nil {
			m.log.Error("the catalog's copy in the object store may not match the catalog: it is written again at the next change and at the next start",
				"update_err", err, "err", serr)
		}
	}
	return err
}

// Sync writes the copy of the catalog as it is now, for every gateway it
// holds. Run it at start: a catalog from before copies existed gets one,
// and a copy left ahead by a commit that failed is set back.
func (m *Mirror) Sync(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncLocked(ctx)
}

func (m *Mirror) syncLocked(ctx context.Context) error {
	var c catalog.Contents
	if err := m.db.View(func(tx *catalog.Tx) error {
		var err error
		c, err = tx.Contents()
		return err
	}); err != nil {
		return fmt.Errorf("catalogmirror: read the catalog: %w", err)
	}
	d, err := digest(c)
	if err != nil {
		return err
	}
	for _, g := range c.Gateways {
		if err := m.checkNotBehind(ctx, g.ID, c.Generation); err != nil {
			return err
		}
	}
	written := map[string][32]byte{}
	for _, g := range c.Gateways {
		if err := m.put(ctx, g.ID, c); err != nil {
			return err
		}
		written[g.ID] = d
	}
	m.written = written
	return nil
}

// BehindError is what Sync returns (wrapping ErrCatalogBehind) for a
// catalog older than its copy.
type BehindError struct {
	Generation     uint64 // the catalog's
	Key            string // the copy's
	CopyGeneration uint64
	CopyWritten    time.Time
}

func (e *BehindError) Error() string {
	return fmt.Sprintf("the catalog is at generation %d, its copy %s at generation %d (written %s)",
		e.Generation, e.Key, e.CopyGeneration, e.CopyWritten.UTC().Format(time.RFC3339))
}

func (e *BehindError) Unwrap() error { return ErrCatalogBehind }

// checkNotBehind refuses to overwrite a copy that holds changes the
// catalog does not. A copy exactly one generation ahead is the change that
// was in flight when a commit failed or the process died: it was never
// acknowledged, and the catalog's state replaces it. A copy sealed with a
// key the keyring lacks is refused too (*NoKeyError): it cannot be checked,
// and overwriting it unchecked could erase the copy of changes made since.
func (m *Mirror) checkNotBehind(ctx context.Context, gatewayID string, generation uint64) error {
	raw, err := m.store.Get(ctx, Key(gatewayID))
	if errors.Is(err, blob.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("catalogmirror: read %s: %w", Key(gatewayID), err)
	}
	doc, k, err := openDocument(gatewayID, raw, m.keys)
	var nokey *NoKeyError
	switch {
	case errors.As(err, &nokey):
		return err
	case err != nil:
		m.log.Warn("the catalog's copy in the store does not open; writing it again from the catalog", "key", Key(gatewayID), "err", err)
		return nil
	case k != nil && m.keys.Default() == nil:
		m.log.Warn("the catalog's copy was sealed, and no default encryption key is set now: it is written in clear from now on",
			"key", Key(gatewayID), "sealed_with", k.String())
	}
	var env envelope
	if err := json.Unmarshal(doc, &env); err != nil || env.Format != format {
		m.log.Warn("the catalog's copy in the store does not decode; writing it again from the catalog", "key", Key(gatewayID), "err", err)
		return nil
	}
	switch {
	case env.Generation > generation+1:
		return &BehindError{Generation: generation, Key: Key(gatewayID), CopyGeneration: env.Generation, CopyWritten: env.WrittenAt}
	case env.Generation == generation+1:
		m.log.Warn("the catalog's copy holds one change the catalog does not (in flight at a crash or a failed commit, never acknowledged); writing it again from the catalog",
			"key", Key(gatewayID), "generation", generation)
	}
	return nil
}

func (m *Mirror) put(ctx context.Context, gatewayID string, c catalog.Contents) error {
	raw, err := encode(gatewayID, c, m.seal, m.now())
	if err != nil {
		return err
	}
	if raw, err = sealDocument(gatewayID, raw, m.keys.Default()); err != nil {
		return err
	}
	if _, err := m.store.Put(ctx, Key(gatewayID), raw, blob.PutOptions{}); err != nil {
		return fmt.Errorf("catalogmirror: write the catalog's copy %s: %w", Key(gatewayID), err)
	}
	return nil
}

// digest identifies the contents (CHAP secrets included, in memory only),
// generation aside: the copy is rewritten only when they change.
func digest(c catalog.Contents) ([32]byte, error) {
	c.Generation = 0
	raw, err := json.Marshal(c)
	if err != nil {
		return [32]byte{}, fmt.Errorf("catalogmirror: %w", err)
	}
	return sha256.Sum256(raw), nil
}
