package volume

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/volgw/volgw/internal/control"
)

// The ledger is what the engine knows, independently of the journal's own
// files (journal.json and the upload-buffer disks), about what the journal
// must still hold. It lives in ledger.json in the state directory, written
// by rename like the superblock, and names:
//
//   - the ring's ID, which journal.json and every record also carry, so a
//     superblock that was deleted, emptied or re-created, or a ring that
//     was replaced, is recognised;
//   - per volume, the LSN of one of its records that a Flush made durable
//     and that no published root covered when the ledger was written;
//   - whether the engine stopped cleanly;
//   - the volumes found damaged, so that a restart does not forget it.
//
// Invariant (loss detection): before Flush acknowledges anything for a
// volume whose records are not yet in its published root, the ledger names
// the volume with such a record (noteFlush). So if the ring cannot deliver
// that record at Open, flushed data is known lost. This costs one extra
// ledger write on the first Flush after a volume becomes dirty (once per
// cut cycle, not per write or per flush); the uploader moves the named
// records forward at each cut interval (refreshLedger), so a ring torn
// below them is caught too. Records flushed after the last ledger write
// are covered only by the journal itself: if the journal is damaged, such
// a volume cannot be known to have lost acknowledged writes, and is shown
// PASS THROUGH rather than IRRECOVERABLE.
//
// Invariant (acknowledged, not flushed): before a write is acknowledged to
// a volume that had nothing outside its published root, the ledger names
// the volume's first such record (noteWritten, in Unflushed). That ledger
// write is not fsynced: a process crash keeps the page cache, and those
// writes are only promised across a process crash; on power loss both may
// go. So if the ring cannot deliver that record at Open, acknowledged
// writes are known lost and the volume is PASS THROUGH (out of sync with
// the store), with an ERROR — never silently AVAILABLE. The cost is one
// small file replace, without fsync, per volume per cut cycle.
type ledgerFile struct {
	Ring  uint64 `json:"ring"`
	Clean bool   `json:"clean"`
	// Head is at or above every LSN the ring has used: a ring started
	// afresh begins above it, so no new record looks older than a cut.
	Head    uint64                  `json:"head"`
	Volumes map[string]ledgerVolume `json:"volumes,omitempty"`
	// Unflushed names, per volume, its first record outside its published
	// root when the ledger was written, flushed or not (see above).
	Unflushed  map[string]ledgerVolume `json:"unflushed,omitempty"`
	Conditions map[string]volCondition `json:"conditions,omitempty"`
	// Restoring names the volumes still RESTORING (restore.go), so that a
	// restart resumes them.
	Restoring map[string]bool `json:"restoring,omitempty"`
}

type ledgerVolume struct {
	Nonce   uint64 `json:"nonce"`
	Flushed uint64 `json:"flushed"` // LSN of a (flushed, in Volumes) record of the volume
}

// volCondition is a volume found damaged at Open. IRRECOVERABLE lasts
// until the volume is deleted; PASS THROUGH until a cut made after the
// damage (at LSN) is published, i.e. the volume is in sync with the
// store again.
type volCondition struct {
	Status string    `json:"status"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	LSN    uint64    `json:"lsn"`
}

func (e *Engine) ledgerPath() string { return filepath.Join(e.cfg.Dir, "ledger.json") }

// loadLedger reads the ledger; a missing one is (nil, nil), an unreadable
// one an error the caller reports without failing Open.
func (e *Engine) loadLedger() (*ledgerFile, error) {
	b, err := os.ReadFile(e.ledgerPath())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("volume: reading %s: %w", e.ledgerPath(), err)
	}
	var l ledgerFile
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, e.ledgerPath(), err)
	}
	return &l, nil
}

// writeLedgerLocked builds the ledger from the volumes as they are now and
// persists it (fsynced). Records before synced are durable. e.ledgerMu held.
func (e *Engine) writeLedgerLocked(synced uint64, clean bool) error {
	return e.writeLedgerMode(synced, clean, true)
}

// writeLedgerMode is writeLedgerLocked, without the fsyncs when durable is
// false (noteWritten: what it adds is only promised across a process
// crash). e.ledgerMu held.
func (e *Engine) writeLedgerMode(synced uint64, clean, durable bool) error {
	l := ledgerFile{Ring: e.jr.ringID(), Clean: clean, Head: max(e.ledgerHead, e.jr.headLSN()),
		Volumes: map[string]ledgerVolume{}, Unflushed: map[string]ledgerVolume{},
		Conditions: map[string]volCondition{}, Restoring: map[string]bool{}}
	for _, v := range e.volumes() {
		v.mu.Lock()
		first := min(v.dirtyFrom, v.frozenFrom)
		if first != noLSN && !v.deleted {
			l.Unflushed[v.id] = ledgerVolume{Nonce: v.nonce, Flushed: first}
		}
		v.needLedger = false
		if first < synced {
			// v.lastLSN is v's newest record; if the sync did not cover it,
			// its first unreleased record is one the sync did cover.
			rec := first
			if v.lastLSN < synced && v.lastLSN >= first {
				rec = v.lastLSN
			}
			l.Volumes[v.id] = ledgerVolume{Nonce: v.nonce, Flushed: rec}
		}
		if c := v.cond; c != nil && !v.deleted && (c.Status == control.VolumeIrrecoverable || v.base.JournalLSN <= c.LSN) {
			l.Conditions[v.id] = *c
		}
		if r := v.restore; r != nil && !r.finished.Load() && !v.deleted {
			l.Restoring[v.id] = true
		}
		v.mu.Unlock()
	}
	b, _ := json.MarshalIndent(l, "", "  ")
	write := writeFileAtomic
	if !durable {
		write = writeFileRenamed
	}
	if err := write(e.ledgerPath(), b); err != nil {
		return err
	}
	e.ledger, e.ledgerHead = l, l.Head
	return nil
}

// noteFlush is called after a Flush's journal sync succeeded and before it
// is acknowledged: it makes sure the ledger names every volume with
// flushed records not in its published root (see the invariant above).
func (e *Engine) noteFlush() error {
	e.ledgerMu.Lock()
	defer e.ledgerMu.Unlock()
	synced := e.jr.syncedLSN()
	for _, v := range e.volumes() {
		v.mu.Lock()
		first, base := min(v.dirtyFrom, v.frozenFrom), v.base.JournalLSN
		v.mu.Unlock()
		if first >= synced {
			continue
		}
		if ent, ok := e.ledger.Volumes[v.id]; !ok || ent.Flushed < base {
			return e.writeLedgerLocked(synced, false)
		}
	}
	return nil
}

// noteWritten is called after a write to v was appended to the journal
// and before it is acknowledged: if v went from nothing outside its
// published root to something, the ledger is made to name its first such
// record (see the invariant "acknowledged, not flushed"). Usually a no-op.
func (e *Engine) noteWritten(v *Volume) error {
	v.mu.Lock()
	need := v.needLedger
	v.mu.Unlock()
	if !need {
		return nil
	}
	e.ledgerMu.Lock()
	defer e.ledgerMu.Unlock()
	v.mu.Lock()
	need = v.needLedger
	v.mu.Unlock()
	if !need {
		return nil // written meanwhile, by another writer's noteWritten
	}
	return e.writeLedgerMode(e.jr.syncedLSN(), false, false)
}

// refreshLedger, at each cut interval, moves the ledger's records forward
// if the journal was synced since it was written; with force, it writes it
// anyway (a restore finished).
func (e *Engine) refreshLedger(force bool) {
	e.ledgerMu.Lock()
	defer e.ledgerMu.Unlock()
	synced := e.jr.syncedLSN()
	if synced == e.ledgerSynced && !force {
		return
	}
	if err := e.writeLedgerLocked(synced, false); err != nil {
		e.log.Warn("volume: writing the upload-buffer ledger", "err", err)
		return
	}
	e.ledgerSynced = synced
}

// closeLedger records a clean stop: every record is synced (jr.close did).
func (e *Engine) closeLedger() error {
	e.ledgerMu.Lock()
	defer e.ledgerMu.Unlock()
	return e.writeLedgerLocked(e.jr.headLSN(), true)
}

// judgeJournal runs at Open after the journal was replayed: it compares
// what the journal delivered with what the ledger says it had to, marks
// the volumes whose flushed writes are lost
// IRRECOVERABLE (they serve their recovery point and refuse writes) and
// the others whose state cannot be vouched for PASS THROUGH, logs each at
// ERROR naming the file, counts it, and starts a damaged ring afresh. A
// damaged journal never fails Open; only the store (cuts) can.
func (e *Engine) judgeJournal(ctx context.Context) error {
	defer func() { e.jr.damage = nil }()
	e.jr.mu.Lock()
	replayStart := e.jr.tail // replay leaves the tail where it started
	e.jr.mu.Unlock()
	led, lerr := e.loadLedger()
	if lerr != nil {
		e.log.Error("volume: the upload-buffer ledger is unreadable; journal losses cannot be detected at this start",
			"file", e.ledgerPath(), "err", lerr)
	}
	replayEnd := e.jr.headLSN()
	damage := append([]damageNote(nil), e.jr.damage...)
	if led != nil && led.Ring != e.jr.ringID() && len(damage) == 0 {
		damage = append(damage, damageNote{e.jr.path, fmt.Sprintf("describes ring %016x, not ring %016x, the one the engine wrote", e.jr.ringID(), led.Ring)})
	}
	// Without a ledger (the first start of this version, or the ledger
	// lost) nothing can be judged, unless the superblock is gone too:
	// then what the journal held is unknown.
	unknown := led == nil && len(e.jr.damage) > 0
	if led == nil {
		led = &ledgerFile{}
	}
	e.ledgerHead = max(led.Head, replayEnd)
	unclean := !led.Clean

	now := e.now().UTC()
	var lost []*Volume
	for _, v := range e.volumes() {
		v.mu.Lock()
		if v.fenced != nil {
			v.mu.Unlock()
			continue
		}
		if c, ok := led.Conditions[v.id]; ok {
			v.cond = &c
			if c.Status == control.VolumeIrrecoverable {
				e.log.Error("volume: still IRRECOVERABLE", "volume", v.id, "since", c.Since, "reason", c.Reason)
			}
		}
		ent, has := led.Volumes[v.id]
		has = has && ent.Nonce == v.nonce
		needed := has && ent.Flushed >= v.base.JournalLSN
		delivered := led.Ring == e.jr.ringID() && replayStart <= ent.Flushed && replayEnd > ent.Flushed
		// Acknowledged records, flushed or not, the ledger names.
		ack, hasAck := led.Unflushed[v.id]
		hasAck = hasAck && ack.Nonce == v.nonce && ack.Flushed >= v.base.JournalLSN
		ackDelivered := led.Ring == e.jr.ringID() && replayStart <= ack.Flushed && replayEnd > ack.Flushed
		var c *volCondition
		switch {
		case needed && !delivered:
			why := damageText(damage)
			if why == "" {
				why = fmt.Sprintf("the journal in %s ends at record %d", diskNames(e.jr), replayEnd)
			}
			c = &volCondition{Status: control.VolumeIrrecoverable, Since: now, Reason: fmt.Sprintf(
				"writes acknowledged by a flush (journal record %d and maybe later ones) are lost from the upload buffer: %s; the volume serves its recovery point of %s",
				ent.Flushed, why, v.recoveryTime().UTC().Format(time.RFC3339))}
			lost = append(lost, v)
		case hasAck && !ackDelivered:
			why := damageText(damage)
			if why == "" {
				why = fmt.Sprintf("the journal in %s ends at record %d", diskNames(e.jr), replayEnd)
			}
			c = &volCondition{Status: control.VolumePassThrough, Since: now, Reason: fmt.Sprintf(
				"writes acknowledged but not yet flushed by the initiator (from journal record %d) are lost from the upload buffer: %s; the volume holds its recovery point of %s and any writes the journal still delivered",
				ack.Flushed, why, v.recoveryTime().UTC().Format(time.RFC3339))}
		case (len(damage) > 0 && has) || unknown:
			c = &volCondition{Status: control.VolumePassThrough, Since: now, Reason: fmt.Sprintf(
				"the upload buffer was damaged (%s); writes made after %s may not have reached the store",
				damageText(damage), v.recoveryTime().UTC().Format(time.RFC3339))}
		case unclean && v.replayed > 0:
			v.bootstrapLSN, v.bootstrapBlocks = replayEnd, int64(len(v.dirty)+len(v.frozen))
		}
		if c != nil && (v.cond == nil || v.cond.Status != control.VolumeIrrecoverable) {
			v.cond = c
			// recover took the volume for clean as of now; with writes
			// lost it is consistent only as of its root's cut.
			v.cleanAt = time.Time{}
			v.publishRecovery()
			if c.Status == control.VolumeIrrecoverable {
				e.lostIrrecoverable.Add(1)
			} else {
				e.lostPassThrough.Add(1)
			}
			file := diskNames(e.jr)
			if len(damage) > 0 {
				file = damage[0].file
			}
			e.log.Error("volume: the upload buffer does not hold what the volume needs", "volume", v.id,
				"status", c.Status, "file", file, "reason", c.Reason)
		}
		v.mu.Unlock()
	}
	for _, v := range lost {
		// Serve the recovery point, which is genuine: a prefix of the
		// journal may have been replayed over it, and is dropped.
		v.cutMu.Lock()
		v.mu.Lock()
		v.dropAll()
		v.mu.Unlock()
		v.cutMu.Unlock()
	}
	if len(damage) > 0 || len(lost) > 0 {
		if err := e.restartRing(ctx, now); err != nil {
			return err
		}
	}
	if err := e.jr.sync(); err != nil {
		return err
	}
	// Restores resume now that the ring is settled (a restore that ends
	// writes the ledger); the ledger written next names them.
	for _, v := range e.volumes() {
		if led.Restoring[v.id] {
			e.startRestore(v)
		}
	}
	e.ledgerMu.Lock()
	defer e.ledgerMu.Unlock()
	e.ledgerSynced = e.jr.syncedLSN()
	return e.writeLedgerLocked(e.ledgerSynced, false)
}

// restartRing uploads what was replayed (so that nothing a volume holds
// depends on the old ring any more) and starts the ring afresh above every
// LSN used before. Conditions found now (since) end once a cut above the
// new start is published.
func (e *Engine) restartRing(ctx context.Context, since time.Time) error {
	for _, v := range e.volumes() {
		v.mu.Lock()
		dirty := len(v.dirty) > 0 || v.cut != nil
		ok := v.usable() == nil
		v.mu.Unlock()
		if dirty && ok {
			if err := e.cutVolume(ctx, v, false); err != nil {
				return fmt.Errorf("volume: uploading what the damaged journal held: %w", err)
			}
		}
	}
	start := e.ledgerHead
	for _, v := range e.volumes() {
		v.mu.Lock()
		start = max(start, v.base.JournalLSN)
		v.mu.Unlock()
	}
	for _, v := range e.volumes() {
		v.mu.Lock()
		if v.cond != nil && v.cond.Since.Equal(since) {
			v.cond.LSN = start
		}
		v.mu.Unlock()
	}
	e.ledgerHead = start
	return e.jr.restart(start)
}

// damageNote is one thing wrong with the journal's files at Open.
type damageNote struct{ file, what string }

func damageText(d []damageNote) string {
	parts := make([]string, len(d))
	for i, n := range d {
		parts[i] = n.file + " " + n.what
	}
	return strings.Join(parts, "; ")
}

func diskNames(j *journal) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	names := make([]string, len(j.disks))
	for i, d := range j.disks {
		names[i] = d.f.Name()
	}
	return strings.Join(names, ",")
}
