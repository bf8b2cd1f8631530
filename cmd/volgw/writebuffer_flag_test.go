package main

import (
	"io"
	"testing"
)

// TestISCSIWriteBufferFlag: --iscsi-write-buffer defaults to 32 MiB, takes
// a size, and refuses one too small for two 2 MiB writes.
func TestISCSIWriteBufferFlag(t *testing.T) {
	o, err := parseServeFlags(nil, io.Discard)
	if err != nil || o.ISCSIWriteBuffer != 32<<20 {
		t.Fatalf("default: %d (%v), want 32 MiB", o.ISCSIWriteBuffer, err)
	}
	o, err = parseServeFlags([]string{"--iscsi-write-buffer", "96MiB"}, io.Discard)
	if err != nil || o.ISCSIWriteBuffer != 96<<20 {
		t.Fatalf("--iscsi-write-buffer 96MiB: %d (%v)", o.ISCSIWriteBuffer, err)
	}
	for _, v := range []string{"1MiB", "0", "lots"} {
		if _, err := parseServeFlags([]string{"--iscsi-write-buffer", v}, io.Discard); err == nil {
			t.Errorf("--iscsi-write-buffer %s accepted", v)
		}
	}
}
