// Command volgw is the cached-volume storage gateway: `volgw serve` runs
// the AWS Storage Gateway API (plus EC2 DescribeSnapshots/DeleteSnapshot),
// the iSCSI target and the block engine in one process; `volgw
// rebuild-catalog` restores a lost or damaged catalog.db from the copy kept
// in the object store (internal/catalogmirror); `volgw version` prints the
// build.
//
// It owns the command line (a contract: flag names and defaults are relied
// on by users and tests), the API credentials, and the wiring: it opens the
// catalog, the object store (internal/blob/storeurl), the engine
// (internal/volume), the iSCSI target (internal/iscsi, exported to the
// control plane through iscsiExporter), the control plane, and serves
// sgwapi/ec2api through awsproto. The wiring lives in start (serve.go), so
// that the end-to-end tests run the very same server in-process; shutdown
// undoes it in reverse order.
//
// It must not hold domain logic (control), protocol logic (awsproto) or
// data-path logic (volume, scsi, iscsi): only construction, configuration
// and lifecycle.
//
// The end-to-end tests of the whole product live here too: aws-sdk-go-v2
// over every implemented operation, the AWS CLI and boto3 scripts in
// scripts/, the bad-request table, restart, the iSCSI target as the API
// describes it, and the built binary under SIGTERM.
package main
