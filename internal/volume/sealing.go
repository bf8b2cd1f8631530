package volume

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/seal"
)

// Encryption and compression of what the engine stores (package seal has
// the formats). What is sealed with a volume's key: its blocks, pages and
// roots, and the description and tags of its snapshot records. What stays
// clear, because a gateway without the key must still find and list it:
// heads (a sequence number and a token), the listing fields of snapshot
// records (IDs, sizes, times, status, the key's name), and EBS import
// records and tokens.
//
// Naming: a sealed volume names blocks and pages with its key's HMAC
// (seal.Key.NameOf) where a clear one uses SHA-256, so a page entry or a
// root's page reference is the object's name either way, and GC, the
// cache and the journal need not know about keys. Reading checks a fetched
// object against its name with the key the object says it was sealed
// with (seal.Verify): a clear object cannot pass as a sealed one's
// content, nor one key's as another's.
//
// Keys are fixed per volume at creation (volState.Key); a clone or a
// restore names new objects with its own key and keeps reading the
// source's objects with the source's, so both must stay in the keyring.
//
// A missing key is never a silent state: opening an object sealed with a
// key the keyring lacks is control.ErrKeyUnavailable, so a GC round that
// meets one deletes nothing, a restore is refused, and Open refuses a
// local volume whose key is gone.

// descUploaded counts blocks and pages uploaded as written and as stored:
// stored ÷ written is what compression (and sealing's 73 bytes an
// object) made of them.
var descUploaded = prometheus.NewDesc("volgw_store_uploaded_bytes_total",
	"Bytes of the blocks and pages this gateway uploaded: form=\"written\" as the volumes hold them, form=\"stored\" as the store keeps them (compressed with --compress, sealed with a key); stored/written is the compression ratio.",
	[]string{"form"}, nil)

// maxRootBytes bounds what a root or record may decompress to: a root of a
// 32 TiB volume lists 16384 pages of ~100 bytes.
const maxRootBytes = 16 << 20

// maxPageBytes is the largest encoded page: every block stored whole and
// patched, each patch in a pack of its own (layout.go).
const maxPageBytes = 8 + pageBlocks*(2+sha256.Size) + 4 + 2*pageBlocks + 4 + pageBlocks*pagePatchEntry + 4 + pageBlocks*pagePackEntry

// writerFor returns the writer for a volume sealed with the named key ("":
// not sealed).
func (e *Engine) writerFor(keyName string) (seal.Writer, error) {
	w := seal.Writer{Compress: e.cfg.Compress}
	if keyName == "" {
		return w, nil
	}
	k, err := e.cfg.Keys.Key(keyName)
	if err != nil {
		return w, fmt.Errorf("%w: %w", control.ErrKeyUnavailable, err)
	}
	w.Key = k
	return w, nil
}

// importWriter writes the objects of snapshots imported through the EBS
// direct APIs: compressed if the engine compresses, never sealed, since
// their blocks arrive named by the SHA-256 the client computed.
func (e *Engine) importWriter() seal.Writer { return seal.Writer{Compress: e.cfg.Compress} }

// keyForNew is the key a new volume is sealed with: the one asked for, or
// the keyring's default.
func (e *Engine) keyForNew(asked string) (string, error) {
	if asked == "" {
		if k := e.cfg.Keys.Default(); k != nil {
			return k.Name(), nil
		}
		return "", nil
	}
	if !e.cfg.Keys.Has(asked) {
		return "", fmt.Errorf("%w: %q is not in the gateway's keyring", control.ErrKeyUnavailable, asked)
	}
	return asked, nil
}

// open returns the plaintext of an object read from ref, and its key.
func (e *Engine) open(ref string, obj []byte, rawLen, maxLen int) ([]byte, *seal.Key, error) {
	plain, k, err := e.cfg.Keys.Open(ref, obj, rawLen, maxLen)
	switch {
	case errors.Is(err, seal.ErrNoKey):
		return nil, nil, fmt.Errorf("%w: %w", control.ErrKeyUnavailable, err)
	case err != nil:
		return nil, nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return plain, k, nil
}

// sealedBufs recycles the buffers sealed or compressed blocks are written
// into while their PUT is in flight.
var sealedBufs = sync.Pool{New: func() any { b := make([]byte, 0, BlockSize+seal.Overhead+64); return &b }}

// putSealed stores a content-addressed object (a block or a page) through
// w, with putContent's rules. sum is plain's SHA-256 if the caller has it,
// passed on to the store when the object is stored as it is.
func (e *Engine) putSealed(ctx context.Context, w seal.Writer, key string, plain []byte, rawLen int, cutStart time.Time, sum *[32]byte) (int64, error) {
	body := plain
	if w.Transforms() {
		bp := sealedBufs.Get().(*[]byte)
		defer sealedBufs.Put(bp)
		var err error
		if body, err = sealInto(w, key, plain, rawLen, bp); err != nil {
			return 0, err
		}
		if len(body) > 0 && len(plain) > 0 && &body[0] != &plain[0] {
			sum = nil // sum was plain's
		}
	}
	n, err := e.putContent(ctx, key, body, cutStart, sum)
	if n > 0 {
		e.uploadedPlain.Add(int64(len(plain)))
		e.uploadedStored.Add(n)
	}
	return n, err
}

// sealInto returns what the store keeps of plain under key: plain itself
// when w leaves objects as they are, else plain sealed or compressed into
// *scratch (which keeps its buffer if Seal had to grow it).
func sealInto(w seal.Writer, key string, plain []byte, rawLen int, scratch *[]byte) ([]byte, error) {
	if !w.Transforms() {
		return plain, nil
	}
	out, err := w.Seal((*scratch)[:0], key, plain, rawLen)
	if err != nil {
		return nil, err
	}
	if len(out) > 0 && len(plain) > 0 && &out[0] != &plain[0] {
		*scratch = out[:0]
	}
	return out, nil
}

// putRoot stores a root, sealed with w's key.
func (e *Engine) putRoot(ctx context.Context, w seal.Writer, r *root, o blob.PutOptions) error {
	body, err := w.Seal(nil, r.key(), encodeRoot(r), -1)
	if err != nil {
		return err
	}
	return e.put(ctx, r.key(), body, o)
}

// recordPrivate is the part of a snapshot record sealed with its key.
type recordPrivate struct {
	Description string        `json:"description,omitempty"`
	Tags        []control.Tag `json:"tags,omitempty"`
}

// encodeRecord returns what the store holds for rec: with a key, its
// description and tags sealed into Sealed (under the record's own name).
// A gateway without the key keeps what was sealed as it was.
func (e *Engine) encodeRecord(rec *snapRecord) ([]byte, error) {
	out := *rec
	if rec.KMSKey != "" {
		out.Description, out.Tags = "", nil
		k, err := e.cfg.Keys.Key(rec.KMSKey)
		switch {
		case err == nil && (rec.Sealed == nil || rec.opened):
			priv, _ := json.Marshal(recordPrivate{rec.Description, rec.Tags})
			if out.Sealed, err = (seal.Writer{Key: k}).Seal(nil, snapshotKey(rec.ID), priv, -1); err != nil {
				return nil, err
			}
		case rec.Sealed == nil:
			return nil, fmt.Errorf("%w: snapshot %s: %w", control.ErrKeyUnavailable, rec.ID, err)
		}
	}
	b, err := json.Marshal(&out)
	if err != nil {
		return nil, fmt.Errorf("volume: encoding snapshot %s: %w", rec.ID, err)
	}
	return b, nil
}

// decodeRecord reads a stored record, opening its sealed part if the key is
// configured (if not, its description and tags read as empty).
func (e *Engine) decodeRecord(id string, b []byte) (*snapRecord, error) {
	var rec snapRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%w: snapshot %s: %v", ErrCorrupt, id, err)
	}
	if rec.Sealed == nil {
		return &rec, nil
	}
	plain, _, err := e.open(snapshotKey(id), rec.Sealed, -1, maxRootBytes)
	switch {
	case errors.Is(err, control.ErrKeyUnavailable):
		return &rec, nil
	case err != nil:
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	var priv recordPrivate
	if err := json.Unmarshal(plain, &priv); err != nil {
		return nil, fmt.Errorf("%w: snapshot %s: sealed part: %v", ErrCorrupt, id, err)
	}
	rec.Description, rec.Tags, rec.opened = priv.Description, priv.Tags, true
	return &rec, nil
}
