// Package cdpapi is volgw's recovery-point API: a small JSON 1.1 service
// beside Storage Gateway on the same endpoint, for what AWS does not offer
// (AWS keeps one recovery point per volume). Its X-Amz-Target prefix is
// VolgwRecoveryPoints_20261124; requests are signed with SigV4 for the
// service name storagegateway, validated by awsproto against the model in
// model/ (a botocore service model, laid out as a botocore data path, so
// boto3 loads it with AWS_DATA_PATH pointing there and calls
// boto3.client("volgw-recoverypoints", endpoint_url=…)), and errors take
// Storage Gateway's shape (InvalidGatewayRequestException with an
// errorCode). The AWS operations are unchanged.
//
//   - ListRetainedRecoveryPoints(VolumeARN): the volume's retained recovery
//     points (internal/volume/retention.go), oldest first, each with its
//     cut time, sequence number, size and usage; the last is current.
//   - CreateSnapshotFromRetainedRecoveryPoint(VolumeARN, RecoveryPointTime
//     or Sequence, SnapshotDescription, Tags): a completed snapshot of the
//     latest point cut at or before the time, or of that sequence number,
//     restorable with CreateCachediSCSIVolume --snapshot-id and listed by
//     DescribeSnapshots like any other.
//
// Timestamps are epoch seconds, as JSON 1.1 sends them. boto3 sends whole
// seconds (its default precision), so a time names the state as of that
// second; Sequence names one point exactly.
//
// Like sgwapi it speaks only to *control.Service, never to HTTP, the
// catalog or the engine.
package cdpapi
