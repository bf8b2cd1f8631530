package catalogmirror

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/catalog"
	"github.com/volgw/volgw/internal/seal"
	"github.com/volgw/volgw/internal/seal/sealtest"
)

// keyring parses keyring lines and sets def as the default key ("" none).
func keyring(t *testing.T, def string, lines ...string) *seal.Keyring {
	t.Helper()
	kr := sealtest.Parse(t, lines...)
	if def != "" {
		if err := kr.SetDefault(def); err != nil {
			t.Fatal(err)
		}
	}
	return kr
}

// Values long and random-looking enough that ciphertext never holds them
// by chance.
var clearProbes = []string{"gateway-name-Zk3pQ7", "tag-value-7Qx9Lm2", "schedule-desc-Wm8rT4", "target-name-Hy5vB1",
	"111122223333", format, "initiator-secret-1"}

func addProbes(tx *catalog.Tx) error {
	g, err := tx.Gateway(gwID)
	if err != nil {
		return err
	}
	g.Name = "gateway-name-Zk3pQ7"
	vs, err := tx.Volumes()
	if err != nil {
		return err
	}
	v := vs[0]
	v.TargetName = "target-name-Hy5vB1"
	for _, err := range []error{
		tx.PutGateway(g),
		tx.PutVolume(v),
		tx.PutTags(v.ARN, []catalog.Tag{{Key: "owner", Value: "tag-value-7Qx9Lm2"}}),
		tx.PutSchedule(catalog.Schedule{VolumeARN: v.ARN, StartAt: 5, RecurrenceInHours: 12, Description: "schedule-desc-Wm8rT4"}),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestSealedCopy: with a default key the copy holds nothing in clear (no
// gateway name, tag value, schedule description, target name, account, not
// even its format name) and reads back whole with the keyring; a copy
// written in clear by an older volgw is still read, and sealed at the next
// start; without the key, Load and Sync fail naming the key's ID; a sealed
// copy moved under another gateway's name does not open; the default key
// rotated or removed, the copy is still read and written again.
func TestSealedCopy(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if err := f.m.Update(populate); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Update(addProbes); err != nil {
		t.Fatal(err)
	}
	clear, err := f.store.Get(ctx, Key(gwID))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range clearProbes[:len(clearProbes)-1] {
		if !bytes.Contains(clear, []byte(p)) {
			t.Fatalf("the copy written without a key does not hold %q: the probes test nothing", p)
		}
	}

	catKey, other := sealtest.Line(t, "catalog-key"), sealtest.Line(t, "other")
	kr := keyring(t, "catalog-key", catKey, other)
	start := func(keys *seal.Keyring) (*Mirror, error) {
		m, err := New(Config{DB: f.db, Store: f.store, Secret: []byte(testSecret), AccessKeyID: "AKIAEXAMPLE", Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return m, m.Sync(ctx)
	}
	// The copy in clear is read at start (its generation checked) and
	// written again sealed.
	m, err := start(kr)
	if err != nil {
		t.Fatalf("Sync with a default key over a copy in clear: %v", err)
	}
	if err := m.Update(func(tx *catalog.Tx) error {
		return tx.PutTags(gwARN, []catalog.Tag{{Key: "site", Value: "tag-value-7Qx9Lm2"}})
	}); err != nil {
		t.Fatal(err)
	}
	sealed, err := f.store.Get(ctx, Key(gwID))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range clearProbes {
		if bytes.Contains(sealed, []byte(p)) {
			t.Fatalf("the sealed copy holds %q in clear", p)
		}
	}
	cp, err := Load(ctx, f.store, gwID, []byte(testSecret), kr)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.contents(t); !reflect.DeepEqual(cp.Contents, want) || len(cp.ChapLeftOut) != 0 {
		t.Fatalf("sealed copy = %+v\nwant %+v", cp.Contents, want)
	}
	if cp.SealedWith == nil || cp.SealedWith.Name() != "catalog-key" {
		t.Fatalf("SealedWith = %v, want catalog-key", cp.SealedWith)
	}

	// Without the key: a *NoKeyError naming its ID, from Load and from Sync
	// (which leaves the copy as it is).
	wantID := kr.Default().ID()
	for name, keys := range map[string]*seal.Keyring{"no keyring": nil, "another key only": keyring(t, "", other)} {
		_, err := Load(ctx, f.store, gwID, []byte(testSecret), keys)
		var nokey *NoKeyError
		if !errors.As(err, &nokey) || nokey.KeyID != wantID || !errors.Is(err, seal.ErrNoKey) || !strings.Contains(err.Error(), wantID) {
			t.Fatalf("Load with %s = %v, want a NoKeyError naming key ID %s", name, err, wantID)
		}
		if _, err := start(keys); !errors.As(err, &nokey) || nokey.KeyID != wantID {
			t.Fatalf("Sync with %s over a sealed copy = %v, want a NoKeyError naming key ID %s", name, err, wantID)
		}
		if now, err := f.store.Get(ctx, Key(gwID)); err != nil || !bytes.Equal(now, sealed) {
			t.Fatalf("a refused Sync with %s changed the copy (%v)", name, err)
		}
	}

	// Moved under another gateway's name: it does not open.
	const otherGW = "sgw-00000000"
	if _, err := f.store.Put(ctx, Key(otherGW), sealed, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, f.store, otherGW, []byte(testSecret), kr); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load of a sealed copy moved to %s = %v, want ErrInvalid", Key(otherGW), err)
	}
	if err := f.store.Delete(ctx, Key(otherGW)); err != nil {
		t.Fatal(err)
	}

	// The default key rotated (its old secret kept for reading): the copy
	// opens, and is sealed with the new secret.
	newSecret := sealtest.Line(t, "catalog-key")
	rotated := keyring(t, "catalog-key", catKey, newSecret)
	if _, err := start(rotated); err != nil {
		t.Fatalf("Sync after the default key's rotation: %v", err)
	}
	cp, err = Load(ctx, f.store, gwID, nil, rotated)
	if err != nil || cp.SealedWith == nil || cp.SealedWith.ID() == wantID {
		t.Fatalf("copy after rotation: sealed with %v, %v; want the new secret", cp.SealedWith, err)
	}
	if _, err := Load(ctx, f.store, gwID, nil, kr); !errors.Is(err, seal.ErrNoKey) {
		t.Fatalf("the copy after rotation opens with the old secret alone (%v)", err)
	}

	// No default key any more: the copy is read, and written in clear.
	if _, err := start(keyring(t, "", newSecret)); err != nil {
		t.Fatalf("Sync with the key but no default over a sealed copy: %v", err)
	}
	cp, err = Load(ctx, f.store, gwID, []byte(testSecret), nil)
	if err != nil || cp.SealedWith != nil || !reflect.DeepEqual(cp.Contents, f.contents(t)) {
		t.Fatalf("copy with no default key: sealed with %v, %v", cp.SealedWith, err)
	}
}
