package seal

import (
	"bufio"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrNoKey is returned when an object is sealed with a key the keyring does
// not hold, or a key name is not configured.
var ErrNoKey = errors.New("seal: key not configured")

// ErrCorrupt is returned for an object that is not what its format says, or
// whose authentication fails (damaged, or moved to another name).
var ErrCorrupt = errors.New("seal: object damaged or not authentic")

// KeySize is the size of a key's secret: AES-256.
const KeySize = 32

// Key is one named secret. Its name is what users and the API see (a KMS key
// ARN, or any word); its ID is what objects record.
type Key struct {
	name    string
	id      [8]byte
	secret  [KeySize]byte
	nameKey [32]byte
}

func newKey(name string, secret []byte) (*Key, error) {
	if len(secret) != KeySize {
		return nil, fmt.Errorf("seal: key %q has %d bytes, want %d", name, len(secret), KeySize)
	}
	k := &Key{name: name}
	copy(k.secret[:], secret)
	m := hmac.New(sha256.New, k.secret[:])
	m.Write([]byte("volgw key id v1"))
	copy(k.id[:], m.Sum(nil))
	nk, err := hkdf.Key(sha256.New, k.secret[:], nil, "volgw names v1", 32)
	if err != nil {
		return nil, fmt.Errorf("seal: deriving name key: %w", err)
	}
	copy(k.nameKey[:], nk)
	return k, nil
}

// Name returns the name of the key.
func (k *Key) Name() string { return k.name }

// ID returns the key's identifier as hex: what a sealed object records.
func (k *Key) ID() string { return hex.EncodeToString(k.id[:]) }

// String names the key without its secret.
func (k *Key) String() string { return k.name + " (" + k.ID() + ")" }

// NameOf returns the content name of plaintext under the key:
// HMAC-SHA256(nameKey, plaintext).
func (k *Key) NameOf(plain []byte) [32]byte {
	m := hmac.New(sha256.New, k.nameKey[:])
	m.Write(plain)
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// Keyring holds the keys a gateway is configured with. A name may appear
// more than once: the last secret given for it is current (new objects are
// sealed with it) and the earlier ones still open what they sealed — that is
// how a key is rotated. A nil *Keyring holds no key.
type Keyring struct {
	current map[string]*Key  // by name: the last secret given
	byID    map[[8]byte]*Key // every secret, for opening
	def     *Key
}

// ParseKeyring reads a keyring: one key per line, "<name> <base64 secret>"
// (32 bytes), blank lines and lines starting with '#' ignored; ';' also
// separates entries, so a keyring fits in one environment variable.
func ParseKeyring(r io.Reader) (*Keyring, error) {
	kr := &Keyring{current: map[string]*Key{}, byID: map[[8]byte]*Key{}}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		for entry := range strings.SplitSeq(sc.Text(), ";") {
			entry = strings.TrimSpace(entry)
			if entry == "" || strings.HasPrefix(entry, "#") {
				continue
			}
			f := strings.Fields(entry)
			if len(f) != 2 {
				return nil, fmt.Errorf("seal: keyring line %d: want \"<name> <base64 key>\"", line)
			}
			secret, err := base64.StdEncoding.DecodeString(f[1])
			if err != nil {
				return nil, fmt.Errorf("seal: keyring line %d: key %q is not base64", line, f[0])
			}
			k, err := newKey(f[0], secret)
			if err != nil {
				return nil, fmt.Errorf("keyring line %d: %w", line, err)
			}
			if old, dup := kr.byID[k.id]; dup && old.name != k.name {
				return nil, fmt.Errorf("seal: keyring line %d: key %q has the same secret as %q", line, k.name, old.name)
			}
			kr.current[k.name] = k
			kr.byID[k.id] = k
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("seal: reading keyring: %w", err)
	}
	return kr, nil
}

// LoadKeyring reads a keyring file, which must not be readable by group or
// others: it holds the only copy of what opens the bucket.
func LoadKeyring(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("seal: keyring %s has mode %v: it must not be readable by group or others (chmod 600)", path, st.Mode().Perm())
	}
	return ParseKeyring(f)
}

// NewKeyLine returns a keyring line for a new random key named name.
func NewKeyLine(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, " \t\r\n;#") {
		return "", fmt.Errorf("seal: key name %q must be one word", name)
	}
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	return name + " " + base64.StdEncoding.EncodeToString(secret), nil
}

// SetDefault makes the named key the one volumes created without a key are
// sealed with.
func (kr *Keyring) SetDefault(name string) error {
	k, err := kr.Key(name)
	if err != nil {
		return err
	}
	kr.def = k
	return nil
}

// Default returns the default key, or nil if none is set.
func (kr *Keyring) Default() *Key {
	if kr == nil {
		return nil
	}
	return kr.def
}

// Has reports whether a key of that name is configured.
func (kr *Keyring) Has(name string) bool {
	_, err := kr.Key(name)
	return err == nil
}

// Key returns the current key of that name.
func (kr *Keyring) Key(name string) (*Key, error) {
	if kr != nil {
		if k, ok := kr.current[name]; ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNoKey, name)
}

// Len returns how many names the keyring holds.
func (kr *Keyring) Len() int {
	if kr == nil {
		return 0
	}
	return len(kr.current)
}

func (kr *Keyring) byKeyID(id [8]byte) (*Key, error) {
	if kr != nil {
		if k, ok := kr.byID[id]; ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: key ID %s", ErrNoKey, hex.EncodeToString(id[:]))
}
