// Package ec2api is the slice of the EC2 API that Storage Gateway users
// need for snapshots: DescribeSnapshots, DeleteSnapshot, and CreateTags /
// DeleteTags on snapshots (tags.go), in EC2's query protocol. It parses
// parameters (SnapshotId.N, Owner.N, Filter.N, MaxResults, NextToken,
// ResourceId.N, Tag.N.Key/Value), applies EC2's filter semantics (wildcards
// * and ?) and tag rules, and returns values whose xml tags are EC2's
// element names; awsproto encodes them. Errors carry EC2's codes
// (InvalidSnapshot.NotFound, InvalidSnapshotID.Malformed,
// InvalidParameterValue, MissingParameter, TagLimitExceeded, InvalidID).
//
// It must not touch HTTP, the catalog or the engine: snapshots come from the
// control plane through the Snapshots interface.
package ec2api
