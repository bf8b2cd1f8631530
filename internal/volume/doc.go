// Package volume is the block engine: it owns the bytes of every volume —
// the upload buffer (a journal), the local cache, the uploader that turns
// dirty blocks into recovery points in the object store, snapshots, clones
// and restores, and garbage collection. It knows nothing of HTTP or iSCSI:
// the control plane reaches it through control.VolumeEngine (implemented by
// *Engine) and the iSCSI target through scsi.Backend (implemented by
// *Volume). It must not touch the catalog, names or ARNs (control owns them)
// nor the wire (iscsi owns it).
//
// # Layout in the object store (a Merkle tree, as DESIGN.md proposes)
//
//	blocks/<h[0:2]>/<h>            a 512 KiB block, named by its SHA-256; or
//	                               a pack (pack.go): the patches (patch.go)
//	                               one cut stored for one page, each the 4
//	                               KiB sectors of a block changed since it
//	                               was stored whole and that whole block's
//	                               name, named by the pack's SHA-256; or a
//	                               patch stored alone (before packs)
//	pages/<h[0:2]>/<h>             a manifest page: (index, block hash) of the
//	                               non-zero blocks among 4096 (2 GiB), the
//	                               touched zero blocks, and (index, patch
//	                               hash, sector mask, pack, offset, length)
//	                               of the patched ones, and each pack's size
//	volumes/<vol>/roots/<seq>-<token>
//	                               a recovery point: size, cut time, owner,
//	                               journal position, (index, page hash, count),
//	                               its parent root's key and the retention
//	                               window its writer ran with (retention.go);
//	                               roots/<seq> (no token) from before tokens
//	                               existed is still read
//	volumes/<vol>/head             {seq, owner, token} of the published root,
//	                               replaced with If-Match (fencing, fence.go);
//	                               a tombstone once deleted; once detached
//	                               (DetachVolume, attach.go) {seq, token} of
//	                               its last root, detached, detachedAt and the
//	                               control plane's note: nobody's, kept
//	                               reachable for GC, taken by AttachVolume
//	snapshots/<id>.json            a snapshot record naming a root key
//	imports/<id>/<index>-<h>       (empty) block h put at index into the
//	                               pending import <id> (EBS direct APIs,
//	                               snapshotimport.go); GC marks it until the
//	                               completed root names the block; an
//	                               import's root is volumes/<id>/roots/…
//	importtokens/<sha256>.json     StartSnapshot's ClientToken → snapshot ID,
//	                               reclaimed by GC once that snapshot is deleted
//
// A zero block and an empty page are never stored: a volume costs what it
// holds. A cut rewrites only the pages it touched; a snapshot is one small
// record naming a root (the same cost for 1 GiB as for 32 TiB); a clone's
// first root shares every page of its source.
//
// Departures from DESIGN.md, and why: a snapshot record names the root by
// key rather than copying it (pinning stays O(1) in volume size); roots are
// JSON with a sparse page list (a sparse 16 TiB volume's root is bytes, not
// 256 KiB); the cache is not persistent across restarts (dirty data is
// rebuilt from the journal, clean blocks are fetched again) which removes a
// whole class of crash-consistency bugs between cache index and journal at
// the price of a cold cache after a restart.
//
// # Local disks
//
// Upload-buffer disks form one ring (journal.go): records are appended at
// increasing LSNs and released once the cut that covers them is published.
// The ring's disks are preallocated, and their never-written blocks are
// then written once with zeros in the background (ringinit.go), only while
// the journal is idle and only ahead of the head, behind a fence that
// reservations respect: so the ring's first lap is as fast as later ones
// (no extent conversion to commit at each fdatasync), and no record is
// overwritten. What is left is asked of the file system (FIEMAP) at each
// start.
// Cache disks are cut into 512 KiB slots (cache.go). The state directory
// holds state.json (owner ID, disks, volumes) and its copy state.copy.json
// (one lost or damaged copy is rebuilt from the other, with an ERROR; both
// lost, Open refuses a data dir that was in use rather than start afresh:
// loadState), journal.json (the ring's superblock: ID, epoch, layout,
// tail), ledger.json (what the journal must still hold, kept apart from it:
// ledger.go), and volumes/<id>.json per volume (the publish tokens that
// tell its own heads from another writer's, create, delete, detach and
// attach intents, a fence: see fence.go and attach.go), each replaced
// atomically. Only the volume's own
// file is written at a cut.
//
// DescribeCache's and DescribeUploadBuffer's figures (Engine.CacheStats,
// Engine.UploadBufferUsedBytes) are read off counts the cache keeps as
// slots change state, one hit or miss per block a read looks up, and the
// journal's head and tail: asking costs no walk. The cache's figures
// start again at every Open, since the cache itself does; the upload
// buffer's include the records replayed then.
//
// # Invariants
//
// Each is also written next to the code that keeps it.
//
//  1. Durability (Volume.applyRange, journal.add and wait, Volume.Flush).
//     A write is acknowledged only once its record, and every record
//     before it, is in the journal's files (the page cache, or the disk
//     for big batches written with O_DIRECT): under the volume lock a
//     record only gets its LSN and is copied into the journal's current
//     in-memory batch; with the lock dropped, the writer waits until the
//     batches up to its record are written (group commit: one writer at a
//     time writes the oldest batch, so batches reach the files in LSN
//     order and no acknowledged record ever follows a hole). Flush
//     fdatasyncs the journal up to what was written when it was called,
//     sharing the sync with concurrent Flushes; a failed sync is sticky; a
//     failed batch write is retried before any later one. After a crash,
//     Open replays every valid record at or after each volume's published
//     cut over the published
//     root, so every write acknowledged before the last completed Flush —
//     and every later one that reached the journal file — is readable
//     again. A torn or stale record (bad CRC, LSN or epoch, or the zeros
//     after a batch) ends the replay: what follows was never completely
//     appended. A write still in flight may be seen by a read or a cut
//     before it is acknowledged; if the process dies before its batch is
//     written it is lost, as any unacknowledged write may be.
//
//  2. Recovery point (cutVolume). A cut is taken under the volume's lock,
//     which every journal append for the volume also holds; the frozen
//     blocks are exactly the effects of the records before the cut's LSN.
//     Later writes to a frozen block copy it into a new slot
//     (copy-on-write) and never change what is uploaded. Blocks and
//     pages, then the root, then the head are written, so nothing reachable
//     is named before it exists (a page may be stored while the last of its
//     blocks upload: only the root, stored after both, names it);
//     publishing the head advances the recovery point to
//     the cut's time, and only then is the journal released up to the cut.
//     The published root is therefore always a crash-consistent prefix:
//     exactly the writes acknowledged before its cut. RecoveryPoint reports
//     the later of the cut time and the last time the volume was seen with
//     nothing dirty or in flight (the root then held every write made
//     before that time): a brand-new volume reports its creation time, an
//     idle one advances at every cut interval without writing anything.
//     It answers from a state republished under the volume's lock at
//     every change of those (recovery.go), so it never waits for a writer.
//
//  3. Garbage collection (gc.go, rules G1–G4 and G3a–d). An object is
//     deleted only if no head, snapshot record, tombstone younger than the
//     grace period G, root younger than G, or root of a live volume's
//     history still in its retention window (retention.go) reaches it, and
//     it is itself older than G; every operation that names existing objects either holds
//     the source volume's cut lock or finishes within the lease G/2, and a
//     reused object must be younger than the lease or is written again.
//
//  4. Cache (cache.go). Only clean slots are evicted; a dirty or frozen
//     block's slot is owned by its volume until the cut that uploads it is
//     published. A clean slot equals the stored block it caches: the CRC of
//     each 4 KiB sector, taken when it became clean, is checked on every
//     read, and a mismatch drops the slot and the block is fetched again
//     (and checked against its SHA-256). An owned slot may be sparse
//     (sparse.go): a block that read as zeros takes its slot unfilled, and
//     a write to a frozen block takes one over the frozen slot, copying
//     nothing; a bitmap of valid 4 KiB sectors says which hold content,
//     the others reading as zeros or from the frozen slot. The uploader
//     zeros a frozen sparse slot's invalid sectors (punching holes where it
//     can) before publication makes it clean, and publication settles a
//     copy-on-write into the frozen slot before that is let go. The cache
//     holds nothing the journal does not (invariant 1), so losing it loses
//     nothing (cachereset.go): the first I/O error of a cache disk (not
//     a full file system) takes
//     every volume down (ERROR naming the file, PASS THROUGH, I/O answers
//     ErrCacheDisk, never other data; a flush still syncs the journal);
//     ResetCache forgets every slot and
//     cache disk, keeping the journal from each volume's first record
//     after its published root, and the next cache disk added replays
//     those records over the root exactly as Open does. Maintenance
//     (maintenance.go) scrubs clean slots against their CRCs, paced.
//
//  5. Fencing (fence.go). A head is this data dir's own iff its token is
//     one its volume file recorded before the PUT, and it is not detached
//     (a detached head is nobody's until an AttachVolume — which records
//     its token in the volume file before its If-Match PUT, like a create —
//     takes it; of two attaching at once, one wins). A writer whose publish
//     finds a head it did not write (a copy of its data dir won the race,
//     or it was restored from an older backup, or another gateway took the
//     volume) is fenced: persisted, logged at ERROR, writes, flushes,
//     snapshots and its recovery point refused with ErrFenced (also
//     control.ErrVolumeNotReady), reads served from its own last root and
//     its journal, which is never released while it is fenced.
//
//  6. Snapshots (snapshot.go). A completed record is written while its root
//     is the published head, so the root exists first; a pending record
//     names no root and is completed by the next cut; deleting writes a
//     tombstone first and GC reclaims the rest.
//
//  6. Loss detection (ledger.go, noteFlush, judgeJournal). Before Flush
//     acknowledges writes of a volume not yet in its published root, the
//     ledger names one of its flushed records and the ring's ID. At Open,
//     a volume whose named record the journal cannot deliver has lost
//     acknowledged writes: it is IRRECOVERABLE, serves its recovery point
//     and refuses writes; others with records in a damaged journal are
//     PASS THROUGH. A damaged journal never fails Open; a ring started
//     afresh begins above every LSN used before.
//
// # Concurrency
//
// Lock order: Engine.ledgerMu, then Volume.cutMu, then Volume.mu, then
// journal.mu or cache.mu (or Engine.mu, never held while taking a volume
// lock). ResetCache alone holds several volumes' locks: every cutMu, then
// every mu, each in volume ID order. Engine.resetMu may be taken under any
// of these (a cache fault is noted in the middle of I/O) and is held
// while taking no other lock. journal.mu is never held across I/O: a batch is written, and the
// journal synced, with it dropped (journal.writing and syncing say one is
// under way), and waiting for a batch to be written happens with no volume
// lock held. Waiting for journal space, and for admission (journal.reserve: writes
// in flight are bounded, admitted in arrival order), happens before any volume lock is
// taken; waiting for cache space
// drops the volume lock first, and so does fetching a block from the store
// (a read miss, or the read half of a read-modify-write), after which the
// block's state is looked at again; manifest pages are loaded under the
// lock (one page covers 2 GiB, so that is rare). Uploads run without it
// (frozen slots are immutable; the uploader cuts several volumes at once,
// Config.ParallelCuts, one cut per volume under cutMu, all sharing one
// bound on PUTs in flight and one set of buffers: upload.go, uploadPool),
// and so do reads of clean blocks: a read
// pins their slots under the volume lock, reads and checks them after
// releasing it, and unpins them before it takes any lock but cache.mu;
// taking a pinned clean slot for a write waits, under the volume lock,
// for the pin to go.
//
// Check is the opt-in strict mode: it walks every root in the store and the
// local state of every open volume; tests run it after every step.
//
// # Known limits
//
//   - The cache is cold after a restart (see above), and after ResetCache.
//   - While a cache disk has failed, or after ResetCache until a cache disk
//     is added, every volume refuses I/O and cuts (AWS: "the
//     gateway prevents read and write operations"); a disk that failed
//     stays in use until ResetCache (or a restart, which reopens it and
//     starts the cache afresh: a disk whose reads still fail then fails
//     again at the first I/O).
//   - A fenced volume keeps its journal records and dirty cache slots
//     until it is deleted locally: other volumes' writes wait for journal
//     space once the ring fills, and an upload-buffer disk cannot be added
//     (the ring cannot drain). Its own last root is no longer named by a
//     head, so GC (any gateway's) sweeps it after the grace period; reads
//     of blocks its journal does not hold whole then fail (never return
//     another writer's data).
//   - Writes larger than maxAtomic (16 blocks, less with small disks) are
//     atomic with respect to cuts only in maxAtomic pieces.
//   - While a write to the upload buffer fails (a full file system, an
//     I/O error), every write and flush fails: the failed batch is kept and
//     written again before any later record (a record after a hole would
//     be lost to replay), so writes resume as soon as the disk takes them.
package volume
