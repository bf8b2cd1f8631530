package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/storeurl"
	"github.com/volgw/volgw/internal/catalog"
	"github.com/volgw/volgw/internal/catalogmirror"
	"github.com/volgw/volgw/internal/seal"
)

// dataDirState are the data dir's entries besides the catalog. If one of
// them exists the appliance has run here before, so a missing catalog.db
// is a loss to repair, not a new appliance to create.
var dataDirState = []string{"engine", "disks", credentialsFile, "store"}

// openCatalog opens the data dir's catalog for serve. A catalog it refuses
// (damaged, empty, missing from a used data dir) comes back as an error
// that says what is wrong with which file and how to rebuild it from the
// object store; args are rebuild-catalog's flags besides --data-dir
// (recoveryArgs).
func openCatalog(dataDir, args string) (*catalog.DB, error) {
	db, err := catalog.OpenWith(dataDir, catalog.Options{StateEntries: dataDirState})
	if err == nil {
		return db, nil
	}
	if !errors.Is(err, catalog.ErrDamaged) && !errors.Is(err, catalog.ErrMissing) {
		return nil, err
	}
	path := filepath.Join(dataDir, catalog.FileName)
	var steps strings.Builder
	if _, serr := os.Lstat(path); serr == nil {
		fmt.Fprintf(&steps, "  mv %s %s.damaged\n", path, path)
	}
	fmt.Fprintf(&steps, "  volgw rebuild-catalog --data-dir %s%s\n", dataDir, args)
	return nil, fmt.Errorf("%w\nvolgw will not start on a catalog it cannot trust. The object store keeps a copy of the catalog; "+
		"to rebuild it from there:\n%sthen start volgw serve again (see \"Disaster recovery\" in README.md)", err, steps.String())
}

// recoveryArgs are the flags, besides --data-dir, that rebuild-catalog and
// serve need again to reach the same copy: the store, and the keyring file
// that opens a sealed copy ($VOLGW_ENCRYPTION_KEYS, if that is where the
// keyring came from, is read by both).
func recoveryArgs(storeFlag, keysFlag string) string {
	var b strings.Builder
	if storeFlag != "" {
		b.WriteString(" --store '" + storeFlag + "'")
	}
	if keysFlag != "" {
		b.WriteString(" --encryption-keys '" + keysFlag + "'")
	}
	return b.String()
}

// mirrorCatalog wraps the catalog so that every change is copied to the
// store before it commits (sealed with the keyring's default key, if it has
// one), and writes the copy of the catalog as it is now.
func mirrorCatalog(ctx context.Context, db *catalog.DB, store blob.Store, keys *seal.Keyring, creds apiCredentials, o serveOptions, log *slog.Logger) (*catalogmirror.Mirror, error) {
	m, err := catalogmirror.New(catalogmirror.Config{DB: db, Store: store, Keys: keys,
		Secret: []byte(creds.SecretAccessKey), AccessKeyID: creds.AccessKeyID, Logger: log})
	if err != nil {
		return nil, err
	}
	dataDir := o.DataDir
	if err := m.Sync(ctx); err != nil {
		var nokey *catalogmirror.NoKeyError
		if errors.As(err, &nokey) {
			return nil, fmt.Errorf("%w. volgw serve reads the copy before writing over it, to check that the catalog is not older than it: "+
				"start it with --encryption-keys FILE (or $%s) holding that key", err, envEncryptionKeys)
		}
		if errors.Is(err, catalogmirror.ErrCatalogBehind) {
			return nil, fmt.Errorf("the catalog %s is older than its copy in the object store (%w): it was put back from a backup or rolled back, "+
				"and starting on it would lose the changes made since. To start from the copy:\n"+
				"  mv %s %s.old\n  volgw rebuild-catalog --data-dir %s%s\nthen start volgw serve again (see \"Disaster recovery\" in README.md)",
				filepath.Join(dataDir, catalog.FileName), err, filepath.Join(dataDir, catalog.FileName), filepath.Join(dataDir, catalog.FileName),
				dataDir, recoveryArgs(o.Store, o.EncryptionKeys))
		}
		return nil, fmt.Errorf("copy the catalog to the object store: %w", err)
	}
	return m, nil
}

const rebuildUsage = `usage: volgw rebuild-catalog [--data-dir ./volgw-data] [--store URL] [--gateway-id sgw-…] [--encryption-keys FILE]

Rebuilds <data-dir>/catalog.db from the copy volgw serve keeps in the object store
(gateways/<gateway-id>/catalog.json). It never replaces an existing catalog.db: move a
damaged one aside first. CHAP secrets in the copy are sealed with the API secret access key
(VOLGW_SECRET_ACCESS_KEY, else <data-dir>/credentials); without it, CHAP credentials are left out.
When volgw serve ran with --encryption-default-key, the whole copy is sealed with that key:
give the keyring serve used (--encryption-keys FILE, else $VOLGW_ENCRYPTION_KEYS).
`

// rebuildCatalog is `volgw rebuild-catalog`.
func rebuildCatalog(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fl := flag.NewFlagSet("volgw rebuild-catalog", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, rebuildUsage) }
	dataDir := fl.String("data-dir", "./volgw-data", "the data dir whose catalog to rebuild")
	storeFlag := fl.String("store", "", "the object store volgw serve used (default file://<data-dir>/store)")
	gatewayID := fl.String("gateway-id", "", "whose copy to restore, when the store holds several")
	keysFlag := fl.String("encryption-keys", "", "the keyring file volgw serve used, to open a sealed copy (default: $"+envEncryptionKeys+")")
	if err := fl.Parse(args); err != nil {
		return errUsage
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "volgw rebuild-catalog: unexpected argument %q\n%s", fl.Arg(0), rebuildUsage)
		return errUsage
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, catalog.FileName)
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists; rebuild-catalog never replaces a catalog. If volgw serve refuses it as damaged, move it aside first:\n  mv %s %s.damaged",
			path, path, path)
	}
	keys, err := readKeyring(*keysFlag, getenv)
	if err != nil {
		return err
	}
	storeURL := *storeFlag
	if storeURL == "" {
		storeURL = "file://" + filepath.Join(dir, "store")
	}
	store, err := storeurl.OpenEnv(ctx, storeURL, getenv)
	if err != nil {
		return fmt.Errorf("open store %s: %w", storeURL, err)
	}
	id := *gatewayID
	if id == "" {
		entries, err := catalogmirror.List(ctx, store)
		if err != nil {
			return err
		}
		switch len(entries) {
		case 0:
			return fmt.Errorf("the store %s holds no catalog copy. volgw serve keeps one for every activated gateway: "+
				"if this data dir never had one, nothing is lost; move %s's other contents aside and start afresh", storeURL, dir)
		case 1:
			id = entries[0].GatewayID
		default:
			var list strings.Builder
			for _, e := range entries {
				fmt.Fprintf(&list, "  %s (written %s)\n", e.GatewayID, e.Modified.UTC().Format("2006-01-02 15:04:05 MST"))
			}
			return fmt.Errorf("the store %s holds the catalogs of several gateways; choose one with --gateway-id:\n%s", storeURL, strings.TrimRight(list.String(), "\n"))
		}
	}
	cp, err := catalogmirror.Load(ctx, store, id, rebuildSecret(dir, getenv), keys)
	var nokey *catalogmirror.NoKeyError
	if errors.As(err, &nokey) {
		given := "no keyring was given"
		switch {
		case *keysFlag != "":
			given = "the keyring read from " + *keysFlag
		case getenv(envEncryptionKeys) != "":
			given = "the keyring read from $" + envEncryptionKeys
		}
		return fmt.Errorf("%w (%s). Pass --encryption-keys FILE (or set $%s) with the keyring volgw serve used, the one holding that key",
			err, given, envEncryptionKeys)
	}
	if err != nil {
		return err
	}
	created, err := relocateDisks(dir, cp.Contents.Disks)
	if err != nil {
		return err
	}
	if err := catalog.Restore(dir, cp.Contents); err != nil {
		return fmt.Errorf("rebuild %s: %w", path, err)
	}
	c := cp.Contents
	fmt.Fprintf(stdout, "volgw: rebuilt %s from %s in %s (written %s): gateway %s, %d volumes, %d disks, %d tag sets, %d snapshot schedules, %d CHAP credentials, %d ClientTokens\n",
		path, catalogmirror.Key(id), storeURL, cp.WrittenAt.Format("2006-01-02 15:04:05 MST"), id,
		len(c.Volumes), len(c.Disks), len(c.Tags), len(c.Schedules), len(c.Chap), len(c.ClientTokens))
	for _, d := range created {
		fmt.Fprintf(stdout, "volgw: created the missing disk file %s, empty: what it held locally was lost with it\n", d)
	}
	if len(cp.ChapLeftOut) > 0 {
		fmt.Fprintf(stdout, "volgw: WARNING: %d CHAP credentials were NOT restored: %s. Until you set them again with "+
			"update-chap-credentials, these targets accept any initiator:\n", len(cp.ChapLeftOut), cp.ChapReason)
		for _, l := range cp.ChapLeftOut {
			fmt.Fprintf(stdout, "  %s\n", l)
		}
	}
	again := recoveryArgs(*storeFlag, *keysFlag)
	if k := cp.SealedWith; k != nil {
		fmt.Fprintf(stdout, "volgw: the copy was sealed with encryption key %s\n", k)
		again += " --encryption-default-key '" + k.Name() + "'"
	}
	fmt.Fprintf(stdout, "volgw: start volgw serve --data-dir %s%s again\n", dir, again)
	return nil
}

// rebuildSecret is the API secret access key, from the environment or the
// data dir's credentials file; nil if neither has it. Unlike
// loadCredentials it never generates one.
func rebuildSecret(dataDir string, getenv func(string) string) []byte {
	if s := getenv("VOLGW_SECRET_ACCESS_KEY"); s != "" {
		return []byte(s)
	}
	data, err := os.ReadFile(filepath.Join(dataDir, credentialsFile))
	if err != nil {
		return nil
	}
	c, err := parseCredentials(data)
	if err != nil {
		return nil
	}
	return []byte(c.SecretAccessKey)
}

// relocateDisks points the disk records at <data-dir>/disks (the copy may
// come from a data dir at another path) and creates, sparse and empty, any
// disk file that is gone, since a disk record must name an existing file.
func relocateDisks(dataDir string, disks []catalog.Disk) (created []string, err error) {
	for i := range disks {
		d := &disks[i]
		node := d.Node
		if node == "" {
			node = filepath.Base(d.Path)
		}
		d.Path = filepath.Join(dataDir, "disks", node)
		if _, err := os.Stat(d.Path); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(d.Path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(d.Path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		err = f.Truncate(d.SizeBytes)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("create disk %s: %w", d.Path, err)
		}
		created = append(created, d.Path)
	}
	return created, nil
}
