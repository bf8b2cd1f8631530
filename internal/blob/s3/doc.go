// Package s3 is a blob.Store over an S3-compatible bucket (AWS S3,
// versitygw, MinIO, Ceph RGW), built on aws-sdk-go-v2.
//
// Keys: Config.Prefix (with a '/' added) is prepended to every key on the
// way in and stripped on the way out; callers never see it. Keys are checked
// with blob.ValidateKey, so the same keys are valid here and on fs.
//
// Errors are translated where they enter: NoSuchKey and 404 become
// blob.ErrNotFound (NoSuchBucket does not: it is a configuration error),
// 412 PreconditionFailed and 409 ConditionalRequestConflict become
// blob.ErrPreconditionFailed. The SDK error stays in the chain.
//
// Conditional writes: Put sends If-None-Match: * (IfNoneMatch) or
// If-Match: <etag> (IfMatch). AWS S3 honours both since 2024; versitygw
// v1.8.0 (posix backend) honours both, serialising conditional publishes of one key
// with a lock file, which the contract suite's races check. A server that
// ignores the headers would silently turn conditional writes into plain
// ones; run the contract suite (blobtest.RunContractTests) against a new
// server before trusting it with fencing.
//
// ETags are the server's (quoted MD5 for single-part uploads): they change
// whenever content changes, but replacing an object with identical bytes
// keeps the ETag. volgw's head records carry a sequence number, so every
// replace that matters changes the content.
//
// Retries: the SDK's standard retryer with exponential jittered backoff,
// 8 attempts up to 5 s apart by default, and no client-side retry quota.
// Integrity on the way in: every PUT carries its body's CRC-32C
// (x-amz-checksum-crc32c), which the server checks, and an unsigned
// payload; Config.SignPayload signs the body's SHA-256 instead (Store.Put
// says why not by default). The SDK's own default checksums (CRC trailers
// on requests, validation of responses) are off: many S3-compatible
// servers reject or mishandle the trailers.
//
// Transport: the SDK's HTTP client, with idle connections kept for 64
// requests per host (a cut's PUTs and the reads beside them), and PUT
// bodies written to a plain-HTTP connection in one write instead of through
// net's 32 KiB copy buffer (bodyConn, transport.go): on a small machine
// that runs the store too, every CPU cycle the client saves is the store's.
package s3
