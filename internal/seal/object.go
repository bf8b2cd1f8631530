package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

const (
	magicZstd   = "VGZ1"
	magicSealed = "VGE1"

	flagZstd = 1

	saltSize  = 32
	nonceSize = 12
	// sealedHeader is magic, key ID, flags, salt and nonce.
	sealedHeader = 4 + 8 + 1 + saltSize + nonceSize
	// Overhead is what sealing adds to an object's size.
	Overhead = sealedHeader + 16
)

// Writer writes the objects of one volume: its key (nil: not sealed) and
// whether to compress. The zero Writer stores objects as they are. A Writer
// is a value and safe for concurrent use.
type Writer struct {
	Key      *Key
	Compress bool
}

// Sealed reports whether objects are sealed.
func (w Writer) Sealed() bool { return w.Key != nil }

// NameOf returns the content name of plaintext: SHA-256 when objects are not
// sealed, else the key's HMAC (see the package doc).
func (w Writer) NameOf(plain []byte) [32]byte {
	if w.Key == nil {
		return sha256.Sum256(plain)
	}
	return w.Key.NameOf(plain)
}

// Transforms reports whether Seal can return anything but its input.
func (w Writer) Transforms() bool { return w.Key != nil || w.Compress }

// Seal returns the object to store for plaintext under ref (its key in the
// store). The result is plain itself when nothing is done to it, else it is
// appended to dst[:0]. rawLen is the length at which an object is read as
// raw (BlockSize for blocks, -1 for others): Seal never returns another
// object of that length.
func (w Writer) Seal(dst []byte, ref string, plain []byte, rawLen int) ([]byte, error) {
	body, zipped := plain, false
	var scratch []byte
	if w.Compress {
		scratch = compressBuf.get(len(plain))
		defer compressBuf.put(scratch)
		z := encoder().EncodeAll(plain, scratch[:0])
		// Kept only if it saves at least 1/32: a block that barely shrinks
		// is not worth a decompression on every read.
		if len(z)+len(magicZstd) < len(plain)-len(plain)/32 {
			body, zipped = z, true
		}
	}
	if w.Key == nil {
		if !zipped {
			return plain, nil
		}
		out := append(dst[:0], magicZstd...)
		return append(out, body...), nil
	}
	if zipped && len(body)+Overhead == rawLen {
		body, zipped = plain, false // would read as a raw block
	}
	return w.Key.seal(dst[:0], ref, body, zipped)
}

func (k *Key) seal(out []byte, ref string, body []byte, zipped bool) ([]byte, error) {
	out = append(out, magicSealed...)
	out = append(out, k.id[:]...)
	var flags byte
	if zipped {
		flags |= flagZstd
	}
	out = append(out, flags)
	n := len(out)
	out = append(out, make([]byte, saltSize+nonceSize)...)
	if _, err := rand.Read(out[n:]); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	salt, nonce := out[n:n+saltSize], out[n+saltSize:sealedHeader]
	aead, err := k.objectAEAD(salt)
	if err != nil {
		return nil, err
	}
	header := out[:sealedHeader]
	return aead.Seal(out, nonce, body, aad(header, ref)), nil
}

func (k *Key) objectAEAD(salt []byte) (cipher.AEAD, error) {
	sub, err := hkdf.Key(sha256.New, k.secret[:], salt, "volgw object v1", KeySize)
	if err != nil {
		return nil, fmt.Errorf("seal: deriving object key: %w", err)
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return cipher.NewGCM(block)
}

func aad(header []byte, ref string) []byte {
	a := make([]byte, 0, len(header)+len(ref))
	return append(append(a, header...), ref...)
}

// Open returns the plaintext of an object stored under ref, and the key it
// was sealed with (nil if it was not sealed). rawLen is as for Seal. The
// plaintext may be obj itself. maxLen bounds a decompressed size.
//
// ErrNoKey: the object is sealed with a key the keyring does not hold.
// ErrCorrupt: it is damaged, or was sealed under another ref.
func (kr *Keyring) Open(ref string, obj []byte, rawLen, maxLen int) ([]byte, *Key, error) {
	if len(obj) == rawLen || len(obj) < 4 {
		return obj, nil, nil
	}
	switch string(obj[:4]) {
	case magicZstd:
		plain, err := decompress(obj[4:], maxLen)
		return plain, nil, err
	case magicSealed:
	default:
		return obj, nil, nil
	}
	if len(obj) < Overhead {
		return nil, nil, fmt.Errorf("%w: %s: sealed object of %d bytes", ErrCorrupt, ref, len(obj))
	}
	var id [8]byte
	copy(id[:], obj[4:12])
	k, err := kr.byKeyID(id)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ref, err)
	}
	flags := obj[12]
	salt, nonce := obj[13:13+saltSize], obj[13+saltSize:sealedHeader]
	aead, err := k.objectAEAD(salt)
	if err != nil {
		return nil, nil, err
	}
	body, err := aead.Open(nil, nonce, obj[sealedHeader:], aad(obj[:sealedHeader], ref))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, ref, err)
	}
	if flags&flagZstd != 0 {
		body, err = decompress(body, maxLen)
		if err != nil {
			return nil, nil, err
		}
	}
	return body, k, nil
}

// KeyIDOf returns the ID of the key obj is sealed with (as Key.ID), or
// false if obj is not a sealed object.
func KeyIDOf(obj []byte) (string, bool) {
	if len(obj) < Overhead || string(obj[:4]) != magicSealed {
		return "", false
	}
	return hex.EncodeToString(obj[4:12]), true
}

// Verify reports whether plain is the content named name, given the key
// Open returned for it.
func Verify(name [32]byte, plain []byte, k *Key) bool {
	if k == nil {
		return sha256.Sum256(plain) == name
	}
	return k.NameOf(plain) == name
}

func decompress(z []byte, maxLen int) ([]byte, error) {
	d, err := decoder()
	if err != nil {
		return nil, err
	}
	// The decoder uses its unchecked-copy loop only when the output has
	// room for a whole zstd block (128 KiB) past what it holds; with an
	// exact-size buffer every block takes the bounds-checked ("safe") one.
	out, err := d.DecodeAll(z, make([]byte, 0, min(maxLen, 1<<20)+128<<10+64))
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
	}
	if len(out) > maxLen {
		return nil, fmt.Errorf("%w: decompresses to %d bytes, more than %d", ErrCorrupt, len(out), maxLen)
	}
	return out, nil
}

// The zstd coders are made on first use and shared: both are safe for
// concurrent use, and each holds its working memory for reuse.
var (
	encoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic(fmt.Sprintf("seal: zstd encoder with constant options: %v", err))
		}
		return e
	})
	decoder = sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil, zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecoderConcurrency(0))
	})
)

// compressBuf recycles the scratch buffers compression writes into.
var compressBuf bufPool

type bufPool struct{ p sync.Pool }

func (b *bufPool) get(n int) []byte {
	if v, ok := b.p.Get().(*[]byte); ok && cap(*v) >= n {
		return (*v)[:0]
	}
	return make([]byte, 0, n+n/8+64)
}

func (b *bufPool) put(buf []byte) { b.p.Put(&buf) }
