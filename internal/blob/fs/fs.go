package fs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/volgw/volgw/internal/blob"
)

// tempPrefix names the temporary files Put writes before renaming them into
// place. blob.ValidateKey refuses any segment starting with
// blob.ReservedSegmentPrefix, so no key can name one, and List skips them.
const tempPrefix = blob.ReservedSegmentPrefix + "tmp-"

// lockStripes is the number of locks keys hash onto. Two keys sharing a
// stripe only serialise their final check-and-rename, which is short.
const lockStripes = 256

// lockDir holds one lock file per stripe, for flock(2) between processes.
// Its name starts with blob.ReservedSegmentPrefix, so no key reaches it and
// List skips it.
const lockDir = blob.ReservedSegmentPrefix + "locks"

// Store is a blob.Store over a local directory. Safe for concurrent use by
// the goroutines of one process; see the package comment for what holds
// across processes.
type Store struct {
	root string // absolute, cleaned

	// stripes[i], together with an flock of lock file i, guards the
	// check-then-rename (or check-then-remove) of every key hashing to i,
	// which makes conditional Puts atomic against every other Put and
	// Delete of the same key, in this process (the mutex) and in any other
	// process on this machine using the same directory (the flock).
	stripes [lockStripes]sync.Mutex

	// dirs shares directory fsyncs between concurrent Puts (dirSyncer).
	dirs dirSyncer
}

var _ blob.Store = (*Store)(nil)

// New returns a store rooted at dir, creating it if needed.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("fs: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("fs: create store directory: %w", err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("fs: %s is not a directory", abs)
	}
	if err := os.MkdirAll(filepath.Join(abs, lockDir), 0o755); err != nil {
		return nil, fmt.Errorf("fs: create lock directory: %w", err)
	}
	return &Store{root: abs}, nil
}

// Dir returns the directory the store is rooted at.
func (s *Store) Dir() string { return s.root }

// path maps a key to its file. Invariant: the result is inside s.root,
// because ValidateKey refuses empty, "." and ".." segments, absolute keys
// and backslashes, and filepath.Join of such segments cannot climb out.
func (s *Store) path(key string) (string, error) {
	if err := blob.ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// lock takes the key's stripe: its mutex, then an exclusive flock of its
// lock file. The hash is FNV-1a, fixed, so every process picks the same
// stripe for a key. Closing the file releases the flock.
func (s *Store) lock(key string) (unlock func(), err error) {
	h := fnv.New32a()
	h.Write([]byte(key))
	i := h.Sum32() % lockStripes
	mu := &s.stripes[i]
	mu.Lock()
	f, err := os.OpenFile(filepath.Join(s.root, lockDir, fmt.Sprintf("%02x", i)), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		mu.Unlock()
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		mu.Unlock()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() {
		f.Close()
		mu.Unlock()
	}, nil
}

// Get returns the object's content.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, mapErr("get", key, err)
	}
	return data, nil
}

// Stat describes the object without reading it.
func (s *Store) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return blob.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return blob.ObjectInfo{}, err
	}
	return statFile(key, p)
}

func statFile(key, p string) (blob.ObjectInfo, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return blob.ObjectInfo{}, mapErr("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return blob.ObjectInfo{}, fmt.Errorf("fs: stat %q: %w", key, blob.ErrNotFound)
	}
	return info(key, fi), nil
}

// info builds the ObjectInfo of a regular file.
//
// The ETag is inode, mtime in nanoseconds and size. Every Put writes a new
// file and renames it over the old one, so the replacing file is created
// while the old one still exists: the two have different inodes, and the
// ETag changes on every replace even when content and mtime are equal.
func info(key string, fi fs.FileInfo) blob.ObjectInfo {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return blob.ObjectInfo{
		Key:     key,
		Size:    fi.Size(),
		ETag:    fmt.Sprintf("%x-%x-%x", ino, fi.ModTime().UnixNano(), fi.Size()),
		ModTime: fi.ModTime(),
	}
}

// Put writes data to a temporary file in the key's directory, fsyncs it,
// then (under the key's stripe lock, after checking opts) renames it over
// the key and fsyncs the directory, so the object is whole and durable when
// Put returns and a reader sees either the old or the new file.
//
// Two fsyncs per object, and why neither can go: the file's fsync comes
// before the rename, so no object is ever named before its bytes are
// durable (a crash between them leaves a temporary file, never a short
// object); the directory's fsync makes the name itself durable before Put
// returns. The directory fsync is shared (dirSyncer): Puts renaming while
// one runs are covered by the next, one per directory, so concurrent Puts
// cost about one file fsync each plus a few directory fsyncs per batch.
//
// A create-only Put (IfNoneMatch) of a key that exists fails before
// anything is written: content-addressed writers (the volume engine's
// blocks) find duplicates often and would otherwise write and fsync the
// whole object first. The check is repeated under the lock, which is what
// makes it atomic; the early one only saves the work.
func (s *Store) Put(ctx context.Context, key string, data []byte, opts blob.PutOptions) (blob.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return blob.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return blob.ObjectInfo{}, err
	}
	if opts.IfNoneMatch {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return blob.ObjectInfo{}, fmt.Errorf("fs: put %q: object exists: %w", key, blob.ErrPreconditionFailed)
		}
	}
	dir := filepath.Dir(p)
	if err := s.mkdirAll(dir); err != nil {
		return blob.ObjectInfo{}, fmt.Errorf("fs: put %q: %w", key, err)
	}
	tmp, err := writeTemp(dir, data)
	if err != nil {
		return blob.ObjectInfo{}, fmt.Errorf("fs: put %q: %w", key, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(tmp)
		}
	}()
	if err := ctx.Err(); err != nil {
		return blob.ObjectInfo{}, err
	}

	unlock, err := s.lock(key)
	if err != nil {
		return blob.ObjectInfo{}, fmt.Errorf("fs: put %q: %w", key, err)
	}
	defer func() { unlock() }()
	if err := s.checkPrecondition(key, p, opts); err != nil {
		return blob.ObjectInfo{}, err
	}
	if err := os.Rename(tmp, p); err != nil {
		if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			// The key is a directory holding other keys; fs cannot also
			// store an object under it (S3 can, see the package comment).
			return blob.ObjectInfo{}, fmt.Errorf("fs: put %q: other keys lie under it: %w", key, blob.ErrInvalidKey)
		}
		return blob.ObjectInfo{}, fmt.Errorf("fs: put %q: %w", key, err)
	}
	renamed = true
	// The stat is taken under the lock, so it describes this Put's file;
	// the directory fsync need not be (the name is visible, and later Puts
	// and Deletes of the key order after it, whatever the disk holds).
	fi, err := statFile(key, p)
	unlock()
	unlock = func() {}
	if err != nil {
		return blob.ObjectInfo{}, err
	}
	if err := s.dirs.sync(dir); err != nil {
		return blob.ObjectInfo{}, fmt.Errorf("fs: put %q: sync directory: %w", key, err)
	}
	return fi, nil
}

// dirSyncer runs shared directory fsyncs. A caller joins the round being
// collected; if no round is running it runs this one itself, else the
// running round's leader starts it when done. A round fsyncs each of its
// directories once, after every member renamed into it, so each member's
// name is durable when its round ends. (On a journalling file system such
// as ext4, the first fsync of a round commits the whole journal
// transaction, so the rest are nearly free.)
type dirSyncer struct {
	mu      sync.Mutex // guards cur and running
	cur     *syncRound // collecting members; nil: none yet
	running bool
}

type syncRound struct {
	dirs map[string]bool
	done chan struct{}
	err  error // set before done is closed
}

func (d *dirSyncer) sync(dir string) error {
	d.mu.Lock()
	if d.cur == nil {
		d.cur = &syncRound{dirs: map[string]bool{}, done: make(chan struct{})}
	}
	r := d.cur
	r.dirs[dir] = true
	lead := !d.running
	if lead {
		d.running, d.cur = true, nil
	}
	d.mu.Unlock()
	if lead {
		d.run(r)
	}
	<-r.done
	return r.err
}

// run syncs round r, then hands the next collected round, if any, to a new
// goroutine (its members are waiting; this caller's Put need not).
func (d *dirSyncer) run(r *syncRound) {
	// The directories are synced at once: the file system's journal
	// commits them together rather than one commit after another.
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for dir := range r.dirs {
		wg.Go(func() {
			if err := syncDir(dir); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.err = errors.Join(errs...)
	close(r.done)
	d.mu.Lock()
	next := d.cur
	d.cur = nil
	d.running = next != nil
	d.mu.Unlock()
	if next != nil {
		go d.run(next)
	}
}

// checkPrecondition must be called with the key's stripe held.
func (s *Store) checkPrecondition(key, p string, opts blob.PutOptions) error {
	if !opts.IfNoneMatch && opts.IfMatch == "" {
		return nil
	}
	cur, err := statFile(key, p)
	exists := err == nil
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		return err
	}
	if opts.IfNoneMatch && exists {
		return fmt.Errorf("fs: put %q: object exists: %w", key, blob.ErrPreconditionFailed)
	}
	if opts.IfMatch != "" {
		if !exists {
			return fmt.Errorf("fs: put %q: no object to match ETag %q: %w", key, opts.IfMatch, blob.ErrPreconditionFailed)
		}
		if cur.ETag != opts.IfMatch {
			return fmt.Errorf("fs: put %q: ETag is %q, not %q: %w", key, cur.ETag, opts.IfMatch, blob.ErrPreconditionFailed)
		}
	}
	return nil
}

func writeTemp(dir string, data []byte) (name string, err error) {
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return "", err
	}
	name = f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(name)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return "", err
	}
	if err = f.Sync(); err != nil {
		return "", err
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	return name, nil
}

// mkdirAll creates dir and any missing parents below s.root, fsyncing the
// parent of each directory it creates so the new entries survive a crash
// together with the file renamed into them.
func (s *Store) mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is an object, not a directory: %w", dir, blob.ErrInvalidKey)
		}
		return nil
	}
	if dir == s.root {
		return os.MkdirAll(dir, 0o755)
	}
	parent := filepath.Dir(dir)
	if err := s.mkdirAll(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			fi, serr := os.Stat(dir)
			if serr == nil && fi.IsDir() {
				return nil // created concurrently by another Put
			}
			return fmt.Errorf("%s is an object, not a directory: %w", dir, blob.ErrInvalidKey)
		}
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	return errors.Join(serr, cerr)
}

// Delete removes the object. A missing key is not an error. Directories
// left empty are kept: removing them would race with a concurrent Put
// creating a file in them.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := s.lock(key)
	if err != nil {
		return fmt.Errorf("fs: delete %q: %w", key, err)
	}
	defer unlock()
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(mapErr("delete", key, err), blob.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("fs: delete %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return nil // a directory of other keys, not an object
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fs: delete %q: %w", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("fs: delete %q: sync directory: %w", key, err)
	}
	return nil
}

// List walks the objects whose keys start with prefix in lexical key order,
// streaming: it holds one directory's entries at a time, never the whole
// listing.
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.ObjectInfo) error) error {
	// Start at the deepest directory the prefix names in full; a prefix
	// ending in '/' names its directory, "a/b" starts in "a".
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
		if blob.ValidateKey(start) != nil {
			return nil // no valid key lies under such a directory
		}
	}
	return s.walk(ctx, start, prefix, fn)
}

// staleTempAge is how old a temporary file must be for List to remove it.
// A Put renames its temporary file moments after writing it; one this old
// was left by a process that died in the middle of a Put, and would
// otherwise take space forever (List, and so GC and its counts, never see
// it). Removing one that a stalled Put still means to rename costs that
// Put an error (its caller retries), never data: the object was not
// stored yet.
const staleTempAge = time.Hour

// removeStaleTemp removes e, a temporary file in dir, if it is stale. Best
// effort: listing goes on whatever happens.
func removeStaleTemp(dir string, e fs.DirEntry) {
	if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTempAge {
		os.Remove(filepath.Join(dir, e.Name()))
	}
}

// walk lists directory dirKey ("" for the root). It orders entries by the
// key they stand for, a directory "d" counting as "d/": then every key under
// "d" sorts exactly where "d/" does among its siblings, and a depth-first
// walk in that order yields keys in lexical order.
func (s *Store) walk(ctx context.Context, dirKey, prefix string, fn func(blob.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Join(s.root, filepath.FromSlash(dirKey))
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("fs: list %q: %w", prefix, err)
	}
	type item struct {
		sortKey string
		entry   fs.DirEntry
	}
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, blob.ReservedSegmentPrefix) {
			if strings.HasPrefix(name, tempPrefix) {
				removeStaleTemp(dir, e)
			}
			continue // temporary files and anything else of ours
		}
		key := name
		if dirKey != "" {
			key = dirKey + "/" + name
		}
		if e.IsDir() {
			key += "/"
			if !strings.HasPrefix(key, prefix) && !strings.HasPrefix(prefix, key) {
				continue
			}
		} else if !strings.HasPrefix(key, prefix) {
			continue
		}
		items = append(items, item{key, e})
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.sortKey, b.sortKey) })
	for _, it := range items {
		if it.entry.IsDir() {
			if err := s.walk(ctx, strings.TrimSuffix(it.sortKey, "/"), prefix, fn); err != nil {
				return err
			}
			continue
		}
		if !it.entry.Type().IsRegular() {
			continue
		}
		fi, err := it.entry.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted since ReadDir
			}
			return fmt.Errorf("fs: list %q: %w", prefix, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(info(it.sortKey, fi)); err != nil {
			return err
		}
	}
	return nil
}

// mapErr turns "no such object" in its file-system spellings into
// blob.ErrNotFound: a missing file, a directory where the key's file would
// be (the key only prefixes others), or a file where one of its parent
// directories would be.
func mapErr(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("fs: %s %q: %w", op, key, blob.ErrNotFound)
	}
	return fmt.Errorf("fs: %s %q: %w", op, key, err)
}
