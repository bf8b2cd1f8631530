package throttle

import (
	"context"

	"github.com/volgw/volgw/internal/blob"
)

// Store is a blob.Store whose Put bodies pass Upload and whose Get results
// pass Download. A Put waits for its bytes before it is sent (the store
// sees them at the limit's pace, one object after the other); a Get's
// bytes are paced after they arrive, so the next Get of a reader waits
// for this one's share. Stat, Delete and List carry no object bodies and
// are not paced.
type Store struct {
	blob.Store
	Upload, Download *Limiter
}

// Get implements blob.Store.
func (s Store) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if err := s.Download.WaitN(ctx, len(b)); err != nil {
		return nil, err
	}
	return b, nil
}

// GetRange implements blob.Store: paced like a Get of its bytes.
func (s Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	b, err := s.Store.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	if err := s.Download.WaitN(ctx, len(b)); err != nil {
		return nil, err
	}
	return b, nil
}

// Put implements blob.Store.
func (s Store) Put(ctx context.Context, key string, data []byte, opts blob.PutOptions) (blob.ObjectInfo, error) {
	if err := s.Upload.WaitN(ctx, len(data)); err != nil {
		return blob.ObjectInfo{}, err
	}
	return s.Store.Put(ctx, key, data, opts)
}
