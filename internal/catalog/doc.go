// Package catalog is volgw's persistent metadata: the appliance's activation
// state, gateways, local disks and their allocation, volumes and their iSCSI
// targets, CHAP credentials, tags on gateways and volumes, snapshot schedules
// and ClientTokens, kept in one bbolt file at <data-dir>/catalog.db.
//
// It owns only the records and their on-disk form. It knows nothing of the
// AWS API, of the block engine or of iSCSI; the control plane decides what the
// records mean. Snapshot records are not here: they live in the object store,
// owned by the engine, so that any gateway sharing the store sees them.
//
// # Records
//
// Every record is a JSON document inside bbolt, with a version field V.
// Put validates a record before writing it and every read validates what it
// decoded, so a corrupt or foreign record surfaces as an error wrapping
// ErrCorrupt (never a panic, never a half-filled struct). A record written by
// a newer volgw (V > the version this code knows) is refused with
// ErrUnsupportedVersion rather than misread.
//
// # Transactions
//
// All access goes through DB.View (read-only, concurrent) and DB.Update
// (read-write, serialised by bbolt). A Tx is valid only inside the function it
// is passed to and must not be retained or used from another goroutine. An
// Update whose function returns an error changes nothing, so a control-plane
// operation that touches several records (a volume, its ClientToken, its tags
// and its schedule) either happens entirely or not at all. Update commits
// with fsync: once it returns nil the change survives a crash.
//
// # Opening: one process, and never a damaged or silently empty catalog
//
// Open first takes the data dir's lock (volgw.lock, a flock holding the
// owner's pid): a second process is refused at once with ErrInUse, naming
// the data dir and the pid. It then refuses, with an *Error naming the file,
// what is wrong and wrapping ErrDamaged or ErrMissing:
//
//   - an empty catalog.db, and a missing one in a data dir that holds other
//     state of an appliance (Options.StateEntries): creating an empty
//     catalog there would start the appliance without its gateway and
//     volumes. A new catalog is created atomically (built under a temporary
//     name, renamed into place), so an empty file is never ours;
//   - either meta page invalid: bbolt would fall back to the other one, the
//     state before the last commit, dropping an acknowledged change;
//   - a file shorter than its pages (the mapped file would fault), a page
//     that is not what its parent says, elements outside their page, keys
//     out of order, references outside the file (verify.go reads all of it
//     with plain reads before bbolt maps it);
//   - a record that does not decode or validate, or a bbolt consistency
//     check failure (run after open on a goroutine where a fault is a
//     recoverable panic, and every panic becomes ErrDamaged).
//
// Opening never panics and never starts from an older state. The way back
// is Restore, from a copy of Contents kept elsewhere (internal/catalogmirror
// keeps one in the object store).
//
// # Contents and Restore
//
// Contents is every durable record (all but activation keys). Restore
// builds a new catalog.db from it, under the data dir's lock, validating
// every record and the cross-record invariants (Check), and refuses to
// replace an existing file.
package catalog
