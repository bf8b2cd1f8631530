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
package catalog
