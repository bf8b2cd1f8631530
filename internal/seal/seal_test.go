package seal

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const blockSize = 512 << 10

func testKeyring(t *testing.T, lines ...string) *Keyring {
	t.Helper()
	kr, err := ParseKeyring(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func newLine(t *testing.T, name string) string {
	t.Helper()
	l, err := NewKeyLine(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// text is compressible content that is not all one byte.
func text(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		b.WriteString("block ")
		b.WriteString(strings.Repeat("abc", i%7))
		b.WriteString(" of a volume\n")
	}
	return b.Bytes()[:n]
}

func TestRoundTrip(t *testing.T) {
	kr := testKeyring(t, newLine(t, "k1"))
	k1, _ := kr.Key("k1")
	for _, w := range []Writer{{}, {Compress: true}, {Key: k1}, {Key: k1, Compress: true}} {
		for name, plain := range map[string][]byte{"random": randomBytes(blockSize), "text": text(blockSize), "small": []byte("VPG1 page")} {
			obj, err := w.Seal(nil, "blocks/ab/x", plain, blockSize)
			if err != nil {
				t.Fatal(err)
			}
			got, k, err := kr.Open("blocks/ab/x", obj, blockSize, blockSize)
			if err != nil {
				t.Fatalf("%+v %s: %v", w, name, err)
			}
			if !bytes.Equal(got, plain) || k != w.Key {
				t.Fatalf("%+v %s: round trip changed the content or key (%v)", w, name, k)
			}
			if w.Key != nil && bytes.Contains(obj, plain[:min(64, len(plain))]) {
				t.Fatalf("%+v %s: sealed object holds its plaintext", w, name)
			}
			if !Verify(w.NameOf(plain), got, k) {
				t.Fatalf("%+v %s: name does not verify", w, name)
			}
			switch {
			case w.Key == nil && !w.Compress, name == "random" && w.Key == nil:
				if &obj[0] != &plain[0] {
					t.Fatalf("%+v %s: expected the plaintext itself", w, name)
				}
			case name == "text" && w.Compress:
				if len(obj) > blockSize/4 {
					t.Fatalf("%+v: text compressed to %d bytes", w, len(obj))
				}
			case name == "random" && w.Key != nil:
				if len(obj) != blockSize+Overhead {
					t.Fatalf("%+v: incompressible sealed block is %d bytes", w, len(obj))
				}
			}
		}
	}
}

// A raw block that starts with a magic is still a raw block.
func TestRawBlockWithMagic(t *testing.T) {
	for _, m := range []string{magicZstd, magicSealed} {
		b := randomBytes(blockSize)
		copy(b, m)
		got, k, err := (*Keyring)(nil).Open("blocks/x", b, blockSize, blockSize)
		if err != nil || k != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: raw block misread: %v", m, err)
		}
	}
}

func TestNamesAreKeyed(t *testing.T) {
	kr := testKeyring(t, newLine(t, "a"), newLine(t, "b"))
	a, _ := kr.Key("a")
	b, _ := kr.Key("b")
	p := text(4096)
	sum := sha256.Sum256(p)
	if a.NameOf(p) == sum || a.NameOf(p) == b.NameOf(p) {
		t.Fatal("keyed names must differ from SHA-256 and between keys")
	}
	if a.NameOf(p) != a.NameOf(bytes.Clone(p)) {
		t.Fatal("equal content must get one name under one key (dedup)")
	}
	if Verify(a.NameOf(p), p, nil) || Verify(sum, p, a) {
		t.Fatal("a name verifies only with the key it was made with")
	}
}

func TestSealedObjectsNeverRepeat(t *testing.T) {
	kr := testKeyring(t, newLine(t, "k"))
	k, _ := kr.Key("k")
	p := text(8192)
	seen := map[string]bool{}
	for range 100 {
		obj, err := Writer{Key: k}.Seal(nil, "pages/x", p, -1)
		if err != nil {
			t.Fatal(err)
		}
		hdr := string(obj[13:sealedHeader]) // salt and nonce
		if seen[hdr] {
			t.Fatal("salt and nonce repeated")
		}
		seen[hdr] = true
	}
}

func TestOpenRefuses(t *testing.T) {
	kr := testKeyring(t, newLine(t, "k"))
	k, _ := kr.Key("k")
	p := text(blockSize)
	obj, err := Writer{Key: k, Compress: true}.Seal(nil, "blocks/aa/1", p, blockSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := kr.Open("blocks/aa/2", obj, blockSize, blockSize); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("moved object: %v", err)
	}
	bad := bytes.Clone(obj)
	bad[len(bad)-20] ^= 1
	if _, _, err := kr.Open("blocks/aa/1", bad, blockSize, blockSize); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
	other := testKeyring(t, newLine(t, "k"))
	if _, _, err := other.Open("blocks/aa/1", obj, blockSize, blockSize); !errors.Is(err, ErrNoKey) {
		t.Fatalf("another secret under the same name: %v", err)
	}
	if _, _, err := (*Keyring)(nil).Open("blocks/aa/1", obj, blockSize, blockSize); !errors.Is(err, ErrNoKey) {
		t.Fatalf("no keyring: %v", err)
	}
	z, _ := Writer{Compress: true}.Seal(nil, "r", text(1<<20), -1)
	if _, _, err := kr.Open("r", z, -1, 1<<19); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("decompression past maxLen: %v", err)
	}
}

// Rotation: a second line for a name makes a new current secret; objects
// sealed with the first still open.
func TestRotation(t *testing.T) {
	l1, l2 := newLine(t, "vol-key"), newLine(t, "vol-key")
	old := testKeyring(t, l1)
	k1, _ := old.Key("vol-key")
	obj, _ := Writer{Key: k1}.Seal(nil, "roots/1", []byte(`{"seq":1}`), -1)

	kr := testKeyring(t, l1, l2)
	k2, _ := kr.Key("vol-key")
	if k2.ID() == k1.ID() {
		t.Fatal("rotation kept the old secret current")
	}
	got, k, err := kr.Open("roots/1", obj, -1, 1<<20)
	if err != nil || string(got) != `{"seq":1}` || k.ID() != k1.ID() {
		t.Fatalf("old object after rotation: %q %v %v", got, k, err)
	}
	if testKeyring(t, l2).Has("vol-key") {
		if _, _, err := testKeyring(t, l2).Open("roots/1", obj, -1, 1<<20); !errors.Is(err, ErrNoKey) {
			t.Fatalf("old object without the old secret: %v", err)
		}
	}
}

func TestKeyringFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	body := "# volgw keys\n" + newLine(t, "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab") + "\n\n" + newLine(t, "other") + "\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable keyring accepted: %v", err)
	}
	os.Chmod(path, 0o600)
	kr, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 2 || !kr.Has("other") || kr.Has("nope") {
		t.Fatalf("keyring holds %d keys", kr.Len())
	}
	if err := kr.SetDefault("nope"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("unknown default: %v", err)
	}
	if err := kr.SetDefault("other"); err != nil || kr.Default().Name() != "other" {
		t.Fatal(err)
	}
	// The environment form: entries separated by ';'.
	env, err := ParseKeyring(strings.NewReader(newLine(t, "a") + ";" + newLine(t, "b")))
	if err != nil || env.Len() != 2 {
		t.Fatalf("env keyring: %v", err)
	}
	for _, bad := range []string{"name", "name !!!", "name " + "c2hvcnQ=", "a x y"} {
		if _, err := ParseKeyring(strings.NewReader(bad)); err == nil {
			t.Fatalf("bad line %q accepted", bad)
		}
	}
	k, _ := kr.Key("other")
	if strings.Contains(k.String(), body[strings.Index(body, "other ")+6:][:20]) {
		t.Fatal("String shows the secret")
	}
}

func BenchmarkSeal(b *testing.B) {
	kr, _ := ParseKeyring(strings.NewReader(mustLine("k")))
	k, _ := kr.Key("k")
	for _, c := range []struct {
		name string
		w    Writer
		p    []byte
	}{{"sealed-random", Writer{Key: k}, randomBytes(blockSize)}, {"compress-text", Writer{Compress: true}, text(blockSize)}, {"compress-random", Writer{Compress: true}, randomBytes(blockSize)}, {"both-text", Writer{Key: k, Compress: true}, text(blockSize)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(blockSize)
			dst := make([]byte, 0, blockSize+Overhead)
			for b.Loop() {
				if _, err := c.w.Seal(dst, "blocks/x", c.p, blockSize); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func mustLine(name string) string {
	l, err := NewKeyLine(name)
	if err != nil {
		panic(err)
	}
	return l
}

func BenchmarkOpen(b *testing.B) {
	kr, _ := ParseKeyring(strings.NewReader(mustLine("k")))
	k, _ := kr.Key("k")
	for _, c := range []struct {
		name string
		w    Writer
		p    []byte
	}{{"sealed-random", Writer{Key: k}, randomBytes(blockSize)}, {"compressed-text", Writer{Compress: true}, text(blockSize)}, {"both-text", Writer{Key: k, Compress: true}, text(blockSize)}} {
		obj, err := c.w.Seal(nil, "blocks/x", c.p, blockSize)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(blockSize)
			for b.Loop() {
				if _, _, err := kr.Open("blocks/x", obj, blockSize, blockSize); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
