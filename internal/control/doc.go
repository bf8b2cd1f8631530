// Package control is volgw's control plane: the appliance and its gateway,
// local disks, volumes and their iSCSI targets, CHAP credentials, tags,
// snapshot schedules, IDs and ARNs, and the rules of AWS Storage Gateway
// about all of them. Service has one method per domain operation, with typed
// inputs and outputs of its own.
//
// It knows nothing of HTTP or of the wire format (that is sgwapi, ec2api and
// awsproto), nothing of how bytes are stored (that is the VolumeEngine) and
// nothing of the iSCSI protocol (that is the TargetExporter). Its state lives
// in the catalog; snapshot records live in the object store and are asked of
// the engine.
//
// Errors that the API reports are *Error values carrying Storage Gateway's
// errorCode and AWS's message; test for them with errors.As or IsCode.
// Anything else a method returns is an internal failure.
//
// Ordering rule for operations that touch the engine or the exporter as well
// as the catalog: things are created outside-in and removed inside-out, so
// that a crash between steps leaves at worst an orphan that nothing names
// (an engine volume without a catalog record), never a catalog record
// naming something that does not exist. Create: engine, exporter, catalog.
// Delete: catalog, exporter, engine. Start removes those orphans (an engine
// that lists its volumes: VolumeLister) and reports a catalog volume the
// engine no longer holds as IRRECOVERABLE (service.go, reconcile). A
// create's catalog record and its ClientToken are written in one
// transaction, so a retried create after a crash either finds both (the
// same volume) or neither (a new volume; the orphan of the first attempt is
// gone by then).
//
// Encryption at rest (keys.go): a volume is sealed with one key for life,
// recorded in its catalog record and in the note a detached volume carries:
// the request's KMSKey, or else its source's (snapshot or volume). Every
// key a create or attach needs, to write or to read, must be one the
// gateway has (Config.Keys) before anything is committed.
//
// A shut-down gateway answers GatewayNotConnected to everything but
// DescribeGatewayInformation, StartGateway, DeleteGateway and ListGateways:
// every lookup of a gateway, volume, target or taggable resource for a
// client goes through runningGatewayTx (gateway.go).
package control
