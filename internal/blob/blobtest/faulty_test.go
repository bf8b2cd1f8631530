package blobtest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/volgw/volgw/internal/blob"
)

// A Faulty store without a hook is the store it wraps: it passes the
// whole contract.
func TestFaultyPassThrough(t *testing.T) {
	RunContractTests(t, func(t testing.TB) blob.Store { return NewFaulty(NewFS(t)) })
}

func TestFaultyFailAfter(t *testing.T) {
	f := NewFaulty(NewFS(t))
	f.SetHook(FailAfter(OpPut, 3))
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		key := fmt.Sprintf("k%d", i)
		_, err := f.Put(ctx, key, []byte("x"), blob.PutOptions{})
		if wantFail := i >= 3; wantFail != errors.Is(err, ErrInjected) {
			t.Errorf("Put #%d: err = %v, want failure %v", i, err, wantFail)
		}
		_, serr := f.Stat(ctx, key)
		if written := serr == nil; written != (i < 3) {
			t.Errorf("Put #%d: object written = %v, want %v", i, written, i < 3)
		}
	}
}

// AfterApply is a lost reply: the caller hears an error, the store has
// the object, and a retried create-only Put reports a precondition failure
// although this caller wrote it (the ambiguity blob's doc describes).
func TestFaultyLostReply(t *testing.T) {
	f := NewFaulty(NewFS(t))
	ctx := context.Background()
	lost := errors.New("connection reset")
	f.SetHook(func(op Op, key string) *Fault {
		if op == OpPut && key == "volumes/v/head" {
			return &Fault{Err: lost, AfterApply: true}
		}
		return nil
	})
	if _, err := f.Put(ctx, "volumes/v/head", []byte("seq=1"), blob.PutOptions{IfNoneMatch: true}); !errors.Is(err, lost) {
		t.Fatalf("Put: err = %v, want the injected %v", err, lost)
	}
	f.SetHook(nil)
	if got, err := f.Get(ctx, "volumes/v/head"); err != nil || string(got) != "seq=1" {
		t.Errorf("after a lost reply the object is %q, %v; want it written", got, err)
	}
	if _, err := f.Put(ctx, "volumes/v/head", []byte("seq=1"), blob.PutOptions{IfNoneMatch: true}); !errors.Is(err, blob.ErrPreconditionFailed) {
		t.Errorf("retried create-only Put: err = %v, want ErrPreconditionFailed", err)
	}
}
