package catalogmirror

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/catalog"
	"github.com/volgw/volgw/internal/seal"
)

// Errors of Load and List.
var (
	// ErrNoCopy: the store holds no copy for the gateway asked for.
	ErrNoCopy = errors.New("catalogmirror: no catalog copy in the store")
	// ErrInvalid: a copy that does not decode, fails its checksum or names
	// another gateway.
	ErrInvalid = errors.New("catalogmirror: invalid catalog copy")
	// ErrNewer: a copy written by a newer volgw.
	ErrNewer = errors.New("catalogmirror: catalog copy written by a newer volgw")
	// ErrCatalogBehind: Sync found a copy more than one change ahead of the
	// catalog: the catalog went back in time (restored from a backup, rolled
	// back), and writing it would erase the copy of the changes since.
	ErrCatalogBehind = errors.New("catalogmirror: the catalog is older than its copy")
)

// NoKeyError is what Load and Sync return (wrapping seal.ErrNoKey) for a
// copy sealed with a key the keyring does not hold.
type NoKeyError struct {
	Key   string // the copy's key in the store
	KeyID string // the ID of the key that sealed it (hex), as the copy records it
}

func (e *NoKeyError) Error() string {
	return fmt.Sprintf("the catalog copy %s is sealed with the encryption key of ID %s, which the keyring does not hold", e.Key, e.KeyID)
}

func (e *NoKeyError) Unwrap() error { return seal.ErrNoKey }

const (
	format = "volgw-catalog-copy"
	// version is the envelope's version; bump it when the body's shape
	// changes (catalog.RecordVersion covers the records themselves).
	version = 1
	prefix  = "gateways/"
	suffix  = "/catalog.json"

	infoSeal  = "volgw catalog copy: CHAP secrets"
	infoCheck = "volgw catalog copy: key check"

	// maxDocument bounds what a copy that claims to be compressed may
	// decompress to: far above any catalog (a few KiB per volume).
	maxDocument = 1 << 30
)

// Key is where a gateway's copy lives in the store.
func Key(gatewayID string) string { return prefix + gatewayID + suffix }

// envelope is the stored document. Body is kept as the exact bytes that
// SHA256 covers.
type envelope struct {
	Format        string
	Version       int
	RecordVersion int
	GatewayID     string
	Generation    uint64 // the catalog's generation this copy holds
	WrittenAt     time.Time
	SHA256        string
	Body          json.RawMessage
}

// body is the catalog's contents with CHAP secrets sealed.
type body struct {
	Gateways     []catalog.Gateway
	Disks        []catalog.Disk
	Volumes      []catalog.Volume
	Tags         []catalog.ResourceTags
	Schedules    []catalog.Schedule
	ClientTokens []catalog.ClientToken
	Maintenance  []catalog.Maintenance `json:",omitempty"`
	Bandwidth    []catalog.Bandwidth   `json:",omitempty"`
	Chap         []sealedChap          `json:",omitempty"`
	ChapKey      *keyInfo              `json:",omitempty"`
}

type sealedChap struct {
	TargetARN     string
	InitiatorName string
	Sealed        []byte // nonce || AES-256-GCM(chapSecrets)
}

type chapSecrets struct {
	Initiator, Target string
}

// keyInfo says how the CHAP key was derived, and lets a rebuild tell a
// wrong API secret from a damaged document.
type keyInfo struct {
	KDF         string // HKDF-SHA256
	Salt        []byte
	AccessKeyID string // whose secret: shown when the key is missing or wrong
	Check       string // hex HKDF(secret, salt, infoCheck), 16 bytes
}

// sealer seals CHAP secrets under one derived key.
type sealer struct {
	info keyInfo
	aead cipher.AEAD
}

func newSealer(secret []byte, accessKeyID string, salt []byte) (*sealer, error) {
	if salt == nil {
		salt = make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return nil, fmt.Errorf("catalogmirror: %w", err)
		}
	}
	key, err := hkdf.Key(sha256.New, secret, salt, infoSeal, 32)
	if err != nil {
		return nil, fmt.Errorf("catalogmirror: %w", err)
	}
	check, err := hkdf.Key(sha256.New, secret, salt, infoCheck, 16)
	if err != nil {
		return nil, fmt.Errorf("catalogmirror: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("catalogmirror: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("catalogmirror: %w", err)
	}
	return &sealer{info: keyInfo{KDF: "HKDF-SHA256", Salt: salt, AccessKeyID: accessKeyID, Check: hex.EncodeToString(check)}, aead: aead}, nil
}

func chapAAD(gatewayID string, c catalog.ChapCredential) []byte {
	return []byte(gatewayID + "\x00" + c.TargetARN + "\x00" + c.InitiatorName)
}

func (s *sealer) seal(gatewayID string, c catalog.ChapCredential) (sealedChap, error) {
	plain, err := json.Marshal(chapSecrets{Initiator: c.SecretToAuthenticateInitiator, Target: c.SecretToAuthenticateTarget})
	if err != nil {
		return sealedChap{}, err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return sealedChap{}, fmt.Errorf("catalogmirror: %w", err)
	}
	return sealedChap{TargetARN: c.TargetARN, InitiatorName: c.InitiatorName,
		Sealed: s.aead.Seal(nonce, nonce, plain, chapAAD(gatewayID, c))}, nil
}

func (s *sealer) open(gatewayID string, sc sealedChap) (catalog.ChapCredential, error) {
	c := catalog.ChapCredential{V: catalog.RecordVersion, TargetARN: sc.TargetARN, InitiatorName: sc.InitiatorName}
	n := s.aead.NonceSize()
	if len(sc.Sealed) < n {
		return c, fmt.Errorf("%w: CHAP secret of %s on %s is cut short", ErrInvalid, sc.InitiatorName, sc.TargetARN)
	}
	plain, err := s.aead.Open(nil, sc.Sealed[:n], sc.Sealed[n:], chapAAD(gatewayID, c))
	if err != nil {
		return c, fmt.Errorf("%w: CHAP secret of %s on %s does not open: %v", ErrInvalid, sc.InitiatorName, sc.TargetARN, err)
	}
	var secrets chapSecrets
	if err := json.Unmarshal(plain, &secrets); err != nil {
		return c, fmt.Errorf("%w: CHAP secret of %s on %s: %v", ErrInvalid, sc.InitiatorName, sc.TargetARN, err)
	}
	c.SecretToAuthenticateInitiator, c.SecretToAuthenticateTarget = secrets.Initiator, secrets.Target
	return c, nil
}

// encode builds gatewayID's document from c. CHAP secrets are sealed with
// s; with no sealer they are left out (never written in clear).
func encode(gatewayID string, c catalog.Contents, s *sealer, now time.Time) ([]byte, error) {
	b := body{Gateways: c.Gateways, Disks: c.Disks, Volumes: c.Volumes, Tags: c.Tags,
		Schedules: c.Schedules, ClientTokens: c.ClientTokens, Maintenance: c.Maintenance,
		Bandwidth: c.Bandwidth}
	if s != nil && len(c.Chap) > 0 {
		b.ChapKey = &s.info
		for _, ch := range c.Chap {
			sc, err := s.seal(gatewayID, ch)
			if err != nil {
				return nil, err
			}
			b.Chap = append(b.Chap, sc)
		}
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("catalogmirror: encode: %w", err)
	}
	sum := sha256.Sum256(raw)
	return json.Marshal(envelope{Format: format, Version: version, RecordVersion: catalog.RecordVersion,
		GatewayID: gatewayID, Generation: c.Generation, WrittenAt: now.UTC(), SHA256: hex.EncodeToString(sum[:]), Body: raw})
}

// sealDocument seals a whole document under k, bound to its key in the
// store (a copy moved under another gateway's key does not open); with no
// key, the document is stored as it is.
func sealDocument(gatewayID string, doc []byte, k *seal.Key) ([]byte, error) {
	if k == nil {
		return doc, nil
	}
	out, err := seal.Writer{Key: k}.Seal(nil, Key(gatewayID), doc, -1)
	if err != nil {
		return nil, fmt.Errorf("catalogmirror: seal %s: %w", Key(gatewayID), err)
	}
	return out, nil
}

// openDocument returns the document in raw and the key that sealed it (nil:
// it was stored in clear, as volgw wrote it before copies were sealed, or
// without a default key). A sealed copy whose key keys lacks is a
// *NoKeyError; one that fails to open is ErrInvalid.
func openDocument(gatewayID string, raw []byte, keys *seal.Keyring) ([]byte, *seal.Key, error) {
	doc, k, err := keys.Open(Key(gatewayID), raw, -1, maxDocument)
	switch {
	case errors.Is(err, seal.ErrNoKey):
		return nil, nil, &NoKeyError{Key: Key(gatewayID), KeyID: sealedKeyID(raw)}
	case err != nil:
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return doc, k, nil
}

// sealedKeyID names the key a sealed object needs.
func sealedKeyID(obj []byte) string {
	if id, ok := seal.KeyIDOf(obj); ok {
		return id
	}
	return "(unreadable)"
}

// Copy is a gateway's catalog as read back from the store.
type Copy struct {
	GatewayID string
	WrittenAt time.Time
	Contents  catalog.Contents
	// ChapLeftOut lists the CHAP credentials ("initiator on target") that
	// could not be restored, and ChapReason why (empty when none was left
	// out).
	ChapLeftOut []string
	ChapReason  string
	// SealedWith is the key the copy was sealed with (nil: stored in
	// clear).
	SealedWith *seal.Key
}

// decode verifies a document and opens its CHAP secrets with a key derived
// from secret; with no secret, or the wrong one, CHAP credentials are left
// out and the Copy says so.
func decode(gatewayID string, raw, secret []byte) (Copy, error) {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return Copy{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case env.Format != format:
		return Copy{}, fmt.Errorf("%w: format %q", ErrInvalid, env.Format)
	case env.Version > version || env.RecordVersion > catalog.RecordVersion:
		return Copy{}, fmt.Errorf("%w: version %d, records version %d (this volgw knows %d, %d)", ErrNewer,
			env.Version, env.RecordVersion, version, catalog.RecordVersion)
	case env.Version < 1:
		return Copy{}, fmt.Errorf("%w: version %d", ErrInvalid, env.Version)
	case env.GatewayID != gatewayID:
		return Copy{}, fmt.Errorf("%w: stored for gateway %s names gateway %q", ErrInvalid, gatewayID, env.GatewayID)
	}
	sum := sha256.Sum256(env.Body)
	if want, err := hex.DecodeString(env.SHA256); err != nil || !hmac.Equal(sum[:], want) {
		return Copy{}, fmt.Errorf("%w: body fails its SHA-256", ErrInvalid)
	}
	var b body
	if err := json.Unmarshal(env.Body, &b); err != nil {
		return Copy{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	found := false
	for _, g := range b.Gateways {
		found = found || g.ID == gatewayID
	}
	if !found {
		return Copy{}, fmt.Errorf("%w: the copy of gateway %s does not hold it", ErrInvalid, gatewayID)
	}
	cp := Copy{GatewayID: gatewayID, WrittenAt: env.WrittenAt, Contents: catalog.Contents{Generation: env.Generation,
		Gateways: b.Gateways, Disks: b.Disks, Volumes: b.Volumes, Tags: b.Tags, Schedules: b.Schedules, ClientTokens: b.ClientTokens,
		Maintenance: b.Maintenance, Bandwidth: b.Bandwidth}}
	if len(b.Chap) == 0 {
		return cp, nil
	}
	leftOut := func(reason string) (Copy, error) {
		for _, sc := range b.Chap {
			cp.ChapLeftOut = append(cp.ChapLeftOut, sc.InitiatorName+" on "+sc.TargetARN)
		}
		cp.ChapReason = reason
		return cp, nil
	}
	if b.ChapKey == nil || b.ChapKey.KDF != "HKDF-SHA256" {
		return Copy{}, fmt.Errorf("%w: CHAP secrets without a key description", ErrInvalid)
	}
	if len(secret) == 0 {
		return leftOut(fmt.Sprintf("no API secret access key was given (the one of access key %s seals them)", b.ChapKey.AccessKeyID))
	}
	s, err := newSealer(secret, b.ChapKey.AccessKeyID, b.ChapKey.Salt)
	if err != nil {
		return Copy{}, err
	}
	if s.info.Check != b.ChapKey.Check {
		return leftOut(fmt.Sprintf("the API secret access key given is not the one of access key %s that sealed them", b.ChapKey.AccessKeyID))
	}
	for _, sc := range b.Chap {
		c, err := s.open(gatewayID, sc)
		if err != nil {
			return Copy{}, err
		}
		cp.Contents.Chap = append(cp.Contents.Chap, c)
	}
	return cp, nil
}

// Entry is one copy found in a store.
type Entry struct {
	GatewayID string
	Key       string
	Modified  time.Time
}

// List returns the gateways whose catalog has a copy in store.
func List(ctx context.Context, store blob.Store) ([]Entry, error) {
	var out []Entry
	err := store.List(ctx, prefix, func(o blob.ObjectInfo) error {
		id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, prefix), suffix)
		if ok && id != "" && !strings.Contains(id, "/") {
			out = append(out, Entry{GatewayID: id, Key: o.Key, Modified: o.ModTime})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalogmirror: list %s: %w", prefix, err)
	}
	return out, nil
}

// Load reads and verifies gatewayID's copy from store; secret is the API
// secret access key that sealed its CHAP secrets (nil if unknown), keys the
// keyring that opens a sealed copy (nil opens only a copy in clear; a copy
// sealed with a key it lacks is a *NoKeyError).
func Load(ctx context.Context, store blob.Store, gatewayID string, secret []byte, keys *seal.Keyring) (Copy, error) {
	raw, err := store.Get(ctx, Key(gatewayID))
	if errors.Is(err, blob.ErrNotFound) {
		return Copy{}, fmt.Errorf("%w: %s", ErrNoCopy, Key(gatewayID))
	}
	if err != nil {
		return Copy{}, fmt.Errorf("catalogmirror: read %s: %w", Key(gatewayID), err)
	}
	doc, k, err := openDocument(gatewayID, raw, keys)
	var nokey *NoKeyError
	if errors.As(err, &nokey) {
		return Copy{}, err
	}
	if err == nil {
		var cp Copy
		if cp, err = decode(gatewayID, doc, secret); err == nil {
			cp.SealedWith = k
			return cp, nil
		}
	}
	return Copy{}, fmt.Errorf("%s: %w", Key(gatewayID), err)
}
