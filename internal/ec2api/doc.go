// Package ec2api is the slice of the EC2 API that Storage Gateway users
// need for snapshots: DescribeSnapshots and DeleteSnapshot, in EC2's query
// protocol. It parses parameters (SnapshotId.N, Owner.N, Filter.N,
// MaxResults, NextToken), applies EC2's filter semantics (wildcards * and
// ?), and returns values whose xml tags are EC2's element names; awsproto
// encodes them. Errors carry EC2's codes (InvalidSnapshot.NotFound,
// InvalidSnapshotID.Malformed, InvalidParameterValue).
//
// It must not touch HTTP, the catalog or the engine: snapshots come from the
// control plane through the Snapshots interface.
package ec2api
