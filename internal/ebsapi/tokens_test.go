package ebsapi

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

// TestTokens: a block token gives back its content address until it
// expires; a page token is taken only by the listing that issued it.
func TestTokens(t *testing.T) {
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	h := sha256.Sum256([]byte("block"))
	tok := blockToken(h, now.Add(tokenLifetime))
	if got, err := parseBlockToken(tok, now); err != nil || got != h {
		t.Fatalf("parseBlockToken: %x %v", got, err)
	}
	if _, err := parseBlockToken(tok, now.Add(tokenLifetime+time.Second)); !errors.Is(err, errExpiredToken) {
		t.Errorf("an expired block token: %v", err)
	}
	for _, bad := range []string{"", "AAAA", "!!!!", tok[:len(tok)-4]} {
		if _, err := parseBlockToken(bad, now); !errors.Is(err, errBadToken) {
			t.Errorf("parseBlockToken(%q): %v", bad, err)
		}
	}
	pt := pageToken(4097, "ListSnapshotBlocks/snap-1")
	if next, err := parsePageToken(pt, "ListSnapshotBlocks/snap-1"); err != nil || next != 4097 {
		t.Errorf("parsePageToken: %d %v", next, err)
	}
	if _, err := parsePageToken(pt, "ListSnapshotBlocks/snap-2"); err == nil {
		t.Error("a page token taken by another snapshot's listing")
	}
}
