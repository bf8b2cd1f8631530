// Package blob is volgw's view of an object store; see Store for the
// contract every implementation keeps.
//
// What lives where:
//   - blob (this package): the Store interface, the sentinel errors
//     (ErrNotFound, ErrPreconditionFailed, ErrInvalidKey) and ValidateKey,
//     the one key rule all stores share.
//   - blob/fs: a local directory (the default store).
//   - blob/s3: any S3-compatible bucket (AWS S3, versitygw, MinIO, Ceph RGW).
//   - blob/storeurl: turns a --store URL into one of the above.
//   - blob/blobtest: test support for every package: temporary stores, a real
//     versitygw S3 server, and the one contract suite both stores pass.
//
// Nothing here knows about volumes, blocks or manifests: the object layout
// (DESIGN.md) belongs to the volume engine. Stores never interpret keys
// beyond ValidateKey.
//
// A conditional Put whose outcome is unknown (a lost response, a timeout, an
// SDK retry of a request that had in fact been applied) can report an error
// or ErrPreconditionFailed although the object was written. A caller that
// must know (fencing of a volume's head) reads the object back and compares
// its content.
package blob
