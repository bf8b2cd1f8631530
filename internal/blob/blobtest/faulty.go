package blobtest

import (
	"context"
	"errors"
	"sync"

	"github.com/volgw/volgw/internal/blob"
)

// Op names a blob.Store method, for fault hooks.
type Op string

// The operations a Faulty store can fail.
const (
	OpGet    Op = "Get"
	OpPut    Op = "Put"
	OpStat   Op = "Stat"
	OpDelete Op = "Delete"
	OpList   Op = "List"
)

// ErrInjected is the error a Fault returns when it names none.
var ErrInjected = errors.New("blobtest: injected fault")

// Fault is what a hook decides for one call.
type Fault struct {
	// Err is returned to the caller; ErrInjected when nil.
	Err error
	// AfterApply lets the call reach the real store first and fails it
	// afterwards: the object was written (or deleted) but the caller hears
	// an error, as when a response is lost. Without it the store is not
	// touched.
	AfterApply bool
}

// Faulty wraps a real store and fails the calls a hook picks, to test how
// callers survive an object store that errs, times out or loses replies.
// Calls the hook lets through go to the real store unchanged.
type Faulty struct {
	blob.Store

	mu   sync.Mutex // guards hook
	hook func(op Op, key string) *Fault
}

// NewFaulty wraps s. With no hook set, every call goes through.
func NewFaulty(s blob.Store) *Faulty { return &Faulty{Store: s} }

// SetHook installs hook (nil removes it). It is called before every
// operation with its key (List: the prefix); a nil result lets the call
// through. It may be called concurrently.
func (f *Faulty) SetHook(hook func(op Op, key string) *Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = hook
}

// FailAfter is a hook failing every call of op from the n-th on (1-based),
// before it reaches the store: a store that goes away mid-run.
func FailAfter(op Op, n int) func(Op, string) *Fault {
	var mu sync.Mutex // guards seen
	seen := 0
	return func(o Op, _ string) *Fault {
		if o != op {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		seen++
		if seen >= n {
			return &Fault{}
		}
		return nil
	}
}

func (f *Faulty) decide(op Op, key string) *Fault {
	f.mu.Lock()
	hook := f.hook
	f.mu.Unlock()
	if hook == nil {
		return nil
	}
	fault := hook(op, key)
	if fault != nil && fault.Err == nil {
		fault = &Fault{Err: ErrInjected, AfterApply: fault.AfterApply}
	}
	return fault
}

// Get implements blob.Store.
func (f *Faulty) Get(ctx context.Context, key string) ([]byte, error) {
	fault := f.decide(OpGet, key)
	if fault != nil && !fault.AfterApply {
		return nil, fault.Err
	}
	data, err := f.Store.Get(ctx, key)
	if fault != nil {
		return nil, fault.Err
	}
	return data, err
}

// GetRange implements blob.Store; its faults are Get's (OpGet).
func (f *Faulty) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	fault := f.decide(OpGet, key)
	if fault != nil && !fault.AfterApply {
		return nil, fault.Err
	}
	data, err := f.Store.GetRange(ctx, key, off, n)
	if fault != nil {
		return nil, fault.Err
	}
	return data, err
}

// Put implements blob.Store.
func (f *Faulty) Put(ctx context.Context, key string, data []byte, opts blob.PutOptions) (blob.ObjectInfo, error) {
	fault := f.decide(OpPut, key)
	if fault != nil && !fault.AfterApply {
		return blob.ObjectInfo{}, fault.Err
	}
	info, err := f.Store.Put(ctx, key, data, opts)
	if fault != nil {
		return blob.ObjectInfo{}, fault.Err
	}
	return info, err
}

// Stat implements blob.Store.
func (f *Faulty) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	fault := f.decide(OpStat, key)
	if fault != nil && !fault.AfterApply {
		return blob.ObjectInfo{}, fault.Err
	}
	info, err := f.Store.Stat(ctx, key)
	if fault != nil {
		return blob.ObjectInfo{}, fault.Err
	}
	return info, err
}

// Delete implements blob.Store.
func (f *Faulty) Delete(ctx context.Context, key string) error {
	fault := f.decide(OpDelete, key)
	if fault != nil && !fault.AfterApply {
		return fault.Err
	}
	err := f.Store.Delete(ctx, key)
	if fault != nil {
		return fault.Err
	}
	return err
}

// List implements blob.Store. AfterApply lets the whole walk run, then
// fails it.
func (f *Faulty) List(ctx context.Context, prefix string, fn func(blob.ObjectInfo) error) error {
	fault := f.decide(OpList, prefix)
	if fault != nil && !fault.AfterApply {
		return fault.Err
	}
	err := f.Store.List(ctx, prefix, fn)
	if fault != nil {
		return fault.Err
	}
	return err
}
