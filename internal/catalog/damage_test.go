package catalog

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// populated returns a data dir whose catalog holds a gateway with several
// volumes, tags, schedules and CHAP credentials, closed.
func populated(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	g := testGateway()
	err = db.Update(func(tx *Tx) error {
		if err := tx.PutGateway(g); err != nil {
			return err
		}
		for i := range 20 {
			v := testVolume("vol-0123456789ABCDE" + string(rune('A'+i)) + "0")
			if err := tx.PutVolume(v); err != nil {
				return err
			}
			if err := tx.PutTags(v.ARN, []Tag{{"k", strings.Repeat("v", 200)}}); err != nil {
				return err
			}
			if err := tx.PutSchedule(Schedule{VolumeARN: v.ARN, StartAt: 3, RecurrenceInHours: 24}); err != nil {
				return err
			}
			if err := tx.PutChapCredential(ChapCredential{TargetARN: v.TargetARN, InitiatorName: "iqn.x", SecretToAuthenticateInitiator: "111111111111"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A second transaction, so that both meta pages hold committed states
	// and the file has freed pages.
	if err := db.Update(func(tx *Tx) error {
		return tx.PutDisk(Disk{ID: "cache0", Path: "/c", SizeBytes: 1, Allocation: DiskCache})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// usedPages are the pages of the file bbolt reaches (meta, freelist,
// branch, leaf): damage to a free page changes nothing that is read.
func usedPages(t *testing.T, path string) (ids []int, pageSize int) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pageSize = b.Info().PageSize
	err = b.View(func(tx *bolt.Tx) error {
		for id := 0; ; id++ {
			p, err := tx.Page(id)
			if err != nil {
				return err
			}
			if p == nil {
				return nil
			}
			if p.Type != "free" {
				ids = append(ids, id)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids, pageSize
}

// TestOpenRefusesDamage damages catalog.db in every way the issue names
// (and at every page it uses) and checks that Open returns an error naming
// the file, wrapping ErrDamaged or ErrMissing, and never panics, faults or
// opens an older state. On the code before this check, the half-truncated
// file faulted (SIGBUS, killing the test binary), garbage pages panicked in
// bbolt, and an overwritten newest meta page or an empty file opened
// without complaint.
func TestOpenRefusesDamage(t *testing.T) {
	type damage struct {
		name string
		do   func(t *testing.T, path string)
		want error
		page int // the whole page overwritten, or -1
	}
	overwrite := func(off int64, n int) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			junk := make([]byte, n)
			rand.Read(junk)
			if _, err := f.WriteAt(junk, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []damage{
		{"truncated to half", func(t *testing.T, path string) {
			st, _ := os.Stat(path)
			if err := os.Truncate(path, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, ErrDamaged, -1},
		{"truncated to 0", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, ErrMissing, -1},
		{"truncated to 100 bytes", func(t *testing.T, path string) {
			if err := os.Truncate(path, 100); err != nil {
				t.Fatal(err)
			}
		}, ErrDamaged, -1},
		{"meta page 0 overwritten", overwrite(0, 4096), ErrDamaged, 0},
		{"meta page 1 overwritten", overwrite(4096, 4096), ErrDamaged, 1},
		{"meta checksum flipped", func(t *testing.T, path string) {
			// One byte of meta page 0's checksum, inverted (a random byte
			// could be the same one).
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, 16+60); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0xFF
			if _, err := f.WriteAt(b, 16+60); err != nil {
				t.Fatal(err)
			}
		}, ErrDamaged, -1},
	}
	probe := populated(t)
	db, err := Open(probe)
	if err != nil {
		t.Fatal(err)
	}
	want := contentsOf(t, db)
	db.Close()
	ids, ps := usedPages(t, filepath.Join(probe, FileName))
	if len(ids) < 5 {
		t.Fatalf("test catalog uses only pages %v", ids)
	}
	for _, id := range ids[2:] {
		cases = append(cases, damage{"4 KiB of random bytes over page " + strconv.Itoa(id), overwrite(int64(id*ps), 4096), ErrDamaged, id})
		// A smaller hit inside the page's elements or values.
		cases = append(cases, damage{"64 random bytes inside page " + strconv.Itoa(id), overwrite(int64(id*ps+40), 64), ErrDamaged, -1})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := populated(t)
			path := filepath.Join(dir, FileName)
			// bbolt's page placement varies a little from run to run:
			// whether this page is in use is asked of this very file.
			used, _ := usedPages(t, path)
			c.do(t, path)
			db, err := OpenWith(dir, Options{StateEntries: []string{"engine"}})
			if err == nil {
				// Only acceptable if the damage fell in bytes nothing
				// reads (the unused tail of a page): the catalog must then
				// hold exactly what it held.
				got := contentsOf(t, db)
				db.Close()
				if slices.Contains(used, c.page) || !reflect.DeepEqual(got, want) {
					t.Fatalf("Open accepted a catalog with %s and reads different records", c.name)
				}
				t.Logf("%s: landed in unused bytes; contents unchanged", c.name)
				return
			}
			var e *Error
			if !errors.Is(err, c.want) || !errors.As(err, &e) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open = %v, want an *Error wrapping %v that names %s", err, c.want, path)
			}
			t.Logf("%s: %v", c.name, err)
			// The data dir is released: a Restore can run at once.
			if err := os.Rename(path, path+".damaged"); err != nil {
				t.Fatal(err)
			}
			if err := Restore(dir, Contents{Gateways: []Gateway{testGateway()}}); err != nil {
				t.Fatalf("Restore after refusal: %v", err)
			}
		})
	}
}

func contentsOf(t *testing.T, db *DB) Contents {
	t.Helper()
	var c Contents
	err := db.View(func(tx *Tx) error {
		var err error
		c, err = tx.Contents()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOpenRefusesMissingCatalogOfUsedDataDir: a data dir with engine state
// but no catalog.db is not a new appliance; a truly new one is created.
func TestOpenRefusesMissingCatalogOfUsedDataDir(t *testing.T) {
	dir := populated(t)
	if err := os.Remove(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "engine"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := OpenWith(dir, Options{StateEntries: []string{"disks", "engine", "credentials"}})
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), filepath.Join(dir, FileName)) || !strings.Contains(err.Error(), "engine") {
		t.Fatalf("Open of a used data dir without catalog = %v, want ErrMissing naming the file and what the dir holds", err)
	}
	fresh := t.TempDir()
	db, err := OpenWith(fresh, Options{StateEntries: []string{"disks", "engine", "credentials"}})
	if err != nil {
		t.Fatalf("Open of a new data dir: %v", err)
	}
	db.Close()
	if _, err := os.Stat(filepath.Join(fresh, FileName+".new")); err == nil {
		t.Fatal("creation left its temporary file behind")
	}
	// Once created, it opens again with the state entries present.
	os.Mkdir(filepath.Join(fresh, "engine"), 0o700)
	db, err = OpenWith(fresh, Options{StateEntries: []string{"engine"}})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	db.Close()
}

// TestSecondOpenRefusedWithPID: a data dir is one process's; the second
// Open says who has it at once (bbolt alone waited and said "timeout").
func TestSecondOpenRefusedWithPID(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	var e *Error
	if !errors.Is(err, ErrInUse) || !errors.As(err, &e) || e.PID != os.Getpid() || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open = %v, want ErrInUse naming %s and pid %d", err, dir, os.Getpid())
	}
	if err := Restore(dir, Contents{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Restore while open = %v, want ErrInUse", err)
	}
	db.Close()
	db, err = Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	db.Close()

	// A process that holds bbolt's own lock but not the data dir's (a volgw
	// from before the data dir lock) is reported as such, not as damage.
	other, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := Open(dir); !errors.Is(err, ErrInUse) {
		t.Fatalf("Open while bbolt's lock is held = %v, want ErrInUse", err)
	}
}

// TestRestoreRoundTrip: Contents read from one catalog and restored into a
// new data dir give the same records; Restore refuses to replace a file.
func TestRestoreRoundTrip(t *testing.T) {
	src := populated(t)
	db, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	var c Contents
	if err := db.View(func(tx *Tx) error { c, err = tx.Contents(); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if len(c.Volumes) != 20 || len(c.Chap) != 20 || len(c.Tags) != 20 || len(c.Schedules) != 20 || len(c.Disks) != 1 || len(c.Gateways) != 1 {
		t.Fatalf("Contents = %d gateways %d disks %d volumes %d chap %d tags %d schedules",
			len(c.Gateways), len(c.Disks), len(c.Volumes), len(c.Chap), len(c.Tags), len(c.Schedules))
	}
	dst := t.TempDir()
	if err := Restore(dst, c); err != nil {
		t.Fatal(err)
	}
	if err := Restore(dst, c); !errors.Is(err, ErrExists) {
		t.Fatalf("second Restore = %v, want ErrExists", err)
	}
	db, err = Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var again Contents
	if err := db.View(func(tx *Tx) error { again, err = tx.Contents(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(again.Volumes) != 20 || again.Chap[3] != c.Chap[3] || again.Volumes[7] != c.Volumes[7] || again.Tags[5].Tags[0] != c.Tags[5].Tags[0] {
		t.Fatalf("restored contents differ")
	}
	// An invalid record is refused and nothing is written.
	bad := t.TempDir()
	c.Volumes[0].GatewayID = "sgw-OTHER"
	if err := Restore(bad, c); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("Restore of inconsistent contents = %v, want ErrInconsistent", err)
	}
	if _, err := os.Stat(filepath.Join(bad, FileName)); err == nil {
		t.Fatal("a refused Restore left a catalog.db")
	}
}
