// Package fs is a blob.Store over a local directory, volgw's default store.
//
// Layout: the object with key "a/b/c" is the file <dir>/a/b/c. Keys are
// checked with blob.ValidateKey first, so no key reaches outside <dir>.
// Because an object and a directory cannot share a path, this store cannot
// hold both "a" and "a/b" (S3 can); the second Put fails with
// blob.ErrInvalidKey. volgw's layout never needs both.
//
// Durability and atomicity: Put writes a temporary file (named with
// blob.ReservedSegmentPrefix, skipped by List) in the key's directory,
// fsyncs it, renames it over the key and fsyncs the directory; directories
// it creates are fsynced into their parents. A crash can leave a temporary
// file behind; it is never visible as an object, and a List through its
// directory removes it once it is an hour old (GC lists every minute).
// Directory fsyncs are
// shared by concurrent Puts (a Put renaming while one runs waits for the
// next, which covers it); a create-only Put of an existing key fails
// before writing anything.
//
// ETags are inode-mtime-size, not a content hash: Stat and List never read
// the data, and the ETag changes on every replace, even with equal content.
//
// Conditional Puts (IfNoneMatch, IfMatch) are atomic against every Put and
// Delete of the same key, made through any *Store on the same directory in
// any process on the same machine: the check and the rename run under one
// of 256 striped locks, a mutex plus flock(2) of a lock file in
// <dir>/.volgw-locks. flock is not reliable on network file systems (NFS
// emulates it, others ignore it), so fencing between machines needs the s3
// store on a server that honours conditional writes.
//
// This package owns only the files under its directory; it knows nothing of
// what the keys mean.
package fs
