// Package catalogmirror keeps a copy of the catalog in the object store, so
// that a lost or damaged <data-dir>/catalog.db can be rebuilt from the store
// (`volgw rebuild-catalog`), which already holds every volume's data and
// every snapshot.
//
// It owns the copy's format and when it is written. It knows nothing of what
// the records mean (control), of how the catalog is stored on disk
// (catalog), or of the engine's objects (volume): its keys live under
// gateways/, a prefix the engine's layout does not use (see
// internal/volume/doc.go).
//
// # The copy
//
// One JSON document per gateway, at gateways/<gateway-id>/catalog.json:
// a versioned envelope (format name, envelope version, the catalog's record
// version, the SHA-256 of the body) around every durable record of the
// catalog (catalog.Contents: the gateway, local disks, volumes and targets,
// tags, snapshot schedules, ClientTokens and CHAP credentials). Unconsumed
// activation keys are left out: they expire within minutes. A gateway's
// document is deleted when the gateway is, so a rebuild never brings a
// deleted gateway back.
//
// When the gateway has a default encryption key (volgw serve
// --encryption-default-key), the whole document is sealed with it
// (internal/seal: AES-256-GCM, bound to the document's key in the store, so
// a copy moved under another gateway's name does not open): the bucket
// owner learns nothing from it — not the gateway's name, volume and target
// names, tags, schedule descriptions, disk paths, nor even the generation
// or when it was written; only its size, its name (the gateway ID) and the
// sealing key's ID. Any key of the keyring opens it, so it survives the
// default key's rotation (the old secret stays in the keyring) and a change
// of default key (the next write seals it with the new one). Without a
// default key the document is written in clear, as before copies were
// sealed, and a copy in clear is always read. A copy sealed with a key the
// keyring lacks is a *NoKeyError naming the key's ID: rebuild-catalog needs
// the keyring serve used, and Sync refuses to start over such a copy, since
// it could not tell whether the catalog is behind it.
//
// CHAP secrets are never in clear, sealed document or not: each is sealed with AES-256-GCM under a
// key derived (HKDF-SHA256, random salt kept in the document) from the API
// secret access key, which the user keeps outside the data dir (they set
// it, or were shown it at first start) and which a rebuild asks for. The
// sealed value is bound to its gateway, target and initiator. Without the
// right key a rebuild restores everything but the CHAP credentials, and
// says which ones it left out.
//
// # Invariant: a rebuilt catalog knows every acknowledged operation
//
// Mirror wraps the catalog (it implements control.Catalog). Its Update
// writes the copy of the catalog as the transaction leaves it, inside the
// transaction, before bbolt commits. So:
//
//   - if the store refuses the write, Update returns the error and nothing is
//     committed: the API call fails (InternalError) and the catalog and its
//     copy both still say what they said. This keeps Update's contract (an
//     error means nothing was kept), on which the control plane's undo logic
//     relies; failing the call after a commit would have left the catalog
//     naming a volume the control plane had just undone;
//   - if the write succeeds, the commit follows; once Update returns nil, the
//     copy holds the change. No acknowledged operation is only local;
//   - if the commit fails after the write (a full or failing disk, a crash),
//     the copy is ahead of the catalog by one operation that was never
//     acknowledged. Update then writes the committed state back at once and
//     logs at ERROR if it cannot; Sync at the next start does the same. A
//     rebuild in between would restore that one unacknowledged operation,
//     never lose an acknowledged one.
//
// # Generations: a catalog that went back in time
//
// The catalog and its copy carry a generation (catalog.Tx.Generation),
// advanced by one in the transaction that writes the copy. Sync, at start,
// refuses (ErrCatalogBehind) a catalog more than one generation behind its
// copy: a catalog.db put back from a backup, or a rolled-back disk, would
// otherwise start on an old state and overwrite the copy of the changes
// made since. One generation behind is the change that was in flight when a
// commit failed or the process died, never acknowledged: the catalog wins.
//
// An Update that leaves the copy's records unchanged (an activation key
// handed out, a read-only path that happens to use Update) writes nothing.
// Updates are serialised by bbolt already; the store write adds one
// round-trip to each state-changing API call, nothing to reads or I/O.
package catalogmirror
