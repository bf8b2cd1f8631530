package ebsapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// tokenLifetime is how long a block token stays valid, as the ExpiryTime
// of EBS's list answers says (EBS's own tokens last about seven days).
const tokenLifetime = 7 * 24 * time.Hour

// A block token is base64 of the block's content address (32 bytes) and
// its expiry (Unix seconds, 8 bytes). It is not secret — whoever may call
// GetSnapshotBlock may list the tokens — but it names exactly one block
// content, which GetSnapshotBlock checks the snapshot holds at the index
// asked for, so a token from another index or another snapshot's
// different block is refused as EBS refuses it.
func blockToken(h [32]byte, expiry time.Time) string {
	var b [40]byte
	copy(b[:], h[:])
	binary.BigEndian.PutUint64(b[32:], uint64(expiry.Unix()))
	return base64.StdEncoding.EncodeToString(b[:])
}

var (
	errBadToken     = errors.New("malformed token")
	errExpiredToken = errors.New("expired token")
)

func parseBlockToken(s string, now time.Time) ([32]byte, error) {
	var h [32]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 40 {
		return h, errBadToken
	}
	copy(h[:], b)
	if now.Unix() > int64(binary.BigEndian.Uint64(b[32:])) {
		return h, errExpiredToken
	}
	return h, nil
}

// A page token is base64 of the next block index (8 bytes) and the first
// 8 bytes of a hash of what is being listed (operation and snapshot IDs),
// so a token is only taken by the listing that issued it.
func pageToken(next int64, scope string) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], uint64(next))
	sum := sha256.Sum256([]byte(scope))
	copy(b[8:], sum[:8])
	return base64.StdEncoding.EncodeToString(b[:])
}

func parsePageToken(s, scope string) (int64, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return 0, errBadToken
	}
	sum := sha256.Sum256([]byte(scope))
	next := int64(binary.BigEndian.Uint64(b))
	if string(b[8:]) != string(sum[:8]) || next < 0 {
		return 0, errBadToken
	}
	return next, nil
}
