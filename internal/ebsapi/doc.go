// Package ebsapi serves the EBS direct APIs (the `ebs` service,
// REST-JSON, SigV4 service name "ebs") over volgw's snapshots, on the same
// endpoint and credentials as the Storage Gateway API: backup tools read a
// snapshot — or only the blocks that changed between two — without
// restoring a volume, and write a new snapshot block by block.
//
// A snapshot's blocks are volgw's blocks: 524288 bytes, named by their
// SHA-256 in the object store, listed by the snapshot's root and pages.
// So a block token carries the block's content address (and its expiry),
// and GetSnapshotBlock checks it against the snapshot's block at that
// index before it fetches the object; the checksum sent is the block's own
// name, base64. ListChangedBlocks compares two roots page by page and
// loads only the pages whose hashes differ.
//
// The engine does the reading and writing (volume/snapshotblocks.go,
// volume/snapshotimport.go); this package is the protocol: routes,
// parameters, tokens, paging, and errors in EBS's shape (X-Amzn-ErrorType,
// a JSON body with "message" and the exception's "Reason", the model's
// status). awsproto verifies the signature before a request gets here.
package ebsapi
