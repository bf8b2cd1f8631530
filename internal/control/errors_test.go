package control

import (
	"errors"
	"fmt"
	"testing"
)

// TestEngineErrorMapping: every engine sentinel, however deeply wrapped,
// becomes the API error with its code; the cause stays reachable for logs;
// anything else is left as it is (an internal error).
func TestEngineErrorMapping(t *testing.T) {
	for _, c := range []struct {
		sentinel error
		code     string
	}{
		{ErrVolumeNotFound, CodeVolumeNotFound},
		{ErrSnapshotNotFound, CodeSnapshotNotFound},
		{ErrVolumeTooSmall, CodeInvalidParameters},
		{ErrInvalidVolumeSize, CodeInvalidParameters},
		{ErrVolumeExists, CodeVolumeAlreadyExists},
		{ErrSnapshotExists, CodeInvalidParameters},
		{ErrNoDisks, CodeInvalidParameters},
		{ErrVolumeNotReady, CodeVolumeNotReady},
		{ErrKeyUnavailable, CodeInvalidParameters},
	} {
		engineErr := fmt.Errorf("volume: creating vol-1: %w", fmt.Errorf("layer: %w", c.sentinel))
		got := engineError(engineErr)
		var e *Error
		if !errors.As(got, &e) || e.Code != c.code || e.Message == "" {
			t.Errorf("%v: got %v, want code %s", c.sentinel, got, c.code)
			continue
		}
		if !errors.Is(got, c.sentinel) {
			t.Errorf("%v: the cause is lost: %v", c.sentinel, got)
		}
	}
	// Too small is also an invalid size to an engine; the specific message wins.
	both := fmt.Errorf("%w: %w", ErrVolumeTooSmall, ErrInvalidVolumeSize)
	if e := engineError(both).(*Error); e.Message != errVolumeTooSmall.Message {
		t.Errorf("too small and invalid: %q", e.Message)
	}
	internal := errors.New("disk on fire")
	if got := engineError(internal); got != internal {
		t.Errorf("an internal error was turned into %v", got)
	}
	domain := newError(CodeTargetNotFound)
	if got := engineError(fmt.Errorf("x: %w", domain)); !IsCode(got, CodeTargetNotFound) {
		t.Errorf("a domain error was changed: %v", got)
	}
	if engineError(nil) != nil {
		t.Error("nil mapped to an error")
	}
}
