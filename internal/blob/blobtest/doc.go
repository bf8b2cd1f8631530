// Package blobtest is test support for any package that needs a blob.Store:
// NewFS (a temporary directory), StartVersityGW / NewS3 (a real S3 server,
// versitygw, on 127.0.0.1, stopped at test cleanup), RunContractTests,
// the one contract suite every blob.Store implementation passes, and
// Faulty, a wrapper around a real store that fails the calls a hook picks
// (before they reach the store, or after: a lost reply) for testing how
// callers survive store errors.
//
// It is imported only from _test.go files; nothing in it is a stand-in: the
// S3 store under test talks HTTP to a real S3 implementation.
package blobtest
