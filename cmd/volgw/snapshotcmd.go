package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/volgw/volgw/internal/bytesize"
	"golang.org/x/sys/unix"
)

// volgw snapshot export|import: a snapshot to a raw image file and back,
// through the EBS direct APIs of a running volgw — the calls AWS's own
// coldsnap makes — so it needs only the API's address and credentials,
// and works the same against a gateway on another machine.

// snapshotBlockSize is the EBS direct APIs' block size, which is volgw's.
const snapshotBlockSize = 512 << 10

// snapshotCopiers is how many blocks are in flight at once: enough to
// hide one request's round trip behind the others'.
const snapshotCopiers = 8

const snapshotUsage = `usage:
  volgw snapshot export [--endpoint URL] [--data-dir DIR] [--region R] [--force] SNAPSHOT_ID FILE
  volgw snapshot import [--endpoint URL] [--data-dir DIR] [--region R] [--description TEXT] [--parent SNAPSHOT_ID] FILE
`

func snapshotCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, snapshotUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("snapshot "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var api apiFlags
	api.register(fs)
	switch args[0] {
	case "export":
		force := fs.Bool("force", false, "overwrite FILE if it exists")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 2 {
			fmt.Fprint(stderr, snapshotUsage)
			return errUsage
		}
		client, err := api.ebsClient(getenv)
		if err != nil {
			return err
		}
		return exportSnapshot(ctx, client, fs.Arg(0), fs.Arg(1), *force, stderr)
	case "import":
		description := fs.String("description", "", "the new snapshot's description")
		parent := fs.String("parent", "", "a snapshot FILE is a later version of: the new snapshot is built on it (EBS's ParentSnapshotId), so ListChangedBlocks between the two names what changed")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
			fmt.Fprint(stderr, snapshotUsage)
			return errUsage
		}
		client, err := api.ebsClient(getenv)
		if err != nil {
			return err
		}
		id, err := importSnapshot(ctx, client, fs.Arg(0), *description, *parent, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, id)
		return nil
	}
	fmt.Fprintf(stderr, "volgw snapshot: unknown command %q\n%s", args[0], snapshotUsage)
	return errUsage
}

// snapshotBlock is one block of a snapshot as ListSnapshotBlocks names it.
type snapshotBlock struct {
	index int32
	token string
}

// listSnapshotBlocks returns every block the snapshot holds (absent blocks
// read as zeros) and the volume's size in bytes.
func listSnapshotBlocks(ctx context.Context, client *ebs.Client, id string) ([]snapshotBlock, int64, error) {
	var blocks []snapshotBlock
	var size int64
	p := ebs.NewListSnapshotBlocksPaginator(client, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id), MaxResults: aws.Int32(10000)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("list the blocks of %s: %w", id, err)
		}
		if bs := aws.ToInt32(out.BlockSize); bs != 0 && bs != snapshotBlockSize {
			return nil, 0, fmt.Errorf("snapshot %s has %d-byte blocks; volgw copies %d-byte blocks", id, bs, snapshotBlockSize)
		}
		size = aws.ToInt64(out.VolumeSize) << 30
		for _, b := range out.Blocks {
			blocks = append(blocks, snapshotBlock{index: aws.ToInt32(b.BlockIndex), token: aws.ToString(b.BlockToken)})
		}
	}
	return blocks, size, nil
}

// exportSnapshot writes the snapshot's volume as a raw image to path: a
// file of the volume's size whose absent blocks are holes. It writes a
// temporary file beside path, syncs it and renames it, so path is never a
// half-written image; every block is checked against the checksum the API
// sent with it.
func exportSnapshot(ctx context.Context, client *ebs.Client, id, path string, force bool, stderr io.Writer) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%s exists (--force overwrites it)", path)
	}
	blocks, size, err := listSnapshotBlocks(ctx, client, id)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.part")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()
	if err := tmp.Truncate(size); err != nil {
		return err
	}
	bar := newProgress(stderr, "export "+id, int64(len(blocks))*snapshotBlockSize)
	err = forEachBlock(ctx, len(blocks), func(ctx context.Context, buf []byte, i int) error {
		b := blocks[i]
		data, err := getSnapshotBlock(ctx, client, id, b, buf)
		if err != nil {
			return err
		}
		if _, err := tmp.WriteAt(data, int64(b.index)*snapshotBlockSize); err != nil {
			return err
		}
		bar.add(snapshotBlockSize)
		return nil
	})
	bar.end()
	if err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// getSnapshotBlock reads one block into buf and checks it against the
// SHA-256 the API sent with it.
func getSnapshotBlock(ctx context.Context, client *ebs.Client, id string, b snapshotBlock, buf []byte) ([]byte, error) {
	out, err := client.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(id), BlockIndex: aws.Int32(b.index), BlockToken: aws.String(b.token)})
	if err != nil {
		return nil, fmt.Errorf("block %d of %s: %w", b.index, id, err)
	}
	defer out.BlockData.Close()
	n, err := io.ReadFull(out.BlockData, buf)
	if err != nil || n != snapshotBlockSize || aws.ToInt32(out.DataLength) != snapshotBlockSize {
		return nil, fmt.Errorf("block %d of %s: %d of %d bytes read: %w", b.index, id, n, snapshotBlockSize, err)
	}
	sum := sha256.Sum256(buf)
	if out.ChecksumAlgorithm != ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256 || aws.ToString(out.Checksum) != base64.StdEncoding.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("block %d of %s: the data does not match its checksum %q (%s)", b.index, id, aws.ToString(out.Checksum), out.ChecksumAlgorithm)
	}
	return buf, nil
}

// importSnapshot makes a new snapshot of the raw image at path and returns
// its ID. Blocks of zeros are not sent (a snapshot holds none), unless the
// parent holds that block: then zeros are what changed. The store keeps
// one copy of each distinct block, so blocks it already holds cost no
// space.
func importSnapshot(ctx context.Context, client *ebs.Client, path, description, parent string, stderr io.Writer) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		// A block device reports no size in Stat.
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			return "", err
		}
	}
	if size == 0 {
		return "", fmt.Errorf("%s is empty", path)
	}
	gib := (size + 1<<30 - 1) >> 30
	inParent := map[int32]bool{}
	if parent != "" {
		blocks, parentSize, err := listSnapshotBlocks(ctx, client, parent)
		if err != nil {
			return "", err
		}
		if parentSize > gib<<30 {
			return "", fmt.Errorf("%s is %s, smaller than its parent %s (%s)", path, bytesize.Format(size), parent, bytesize.Format(parentSize))
		}
		for _, b := range blocks {
			inParent[b.index] = true
		}
	}
	token := make([]byte, 16)
	rand.Read(token)
	in := &ebs.StartSnapshotInput{VolumeSize: aws.Int64(gib), ClientToken: aws.String(hex.EncodeToString(token))}
	if description != "" {
		in.Description = aws.String(description)
	}
	if parent != "" {
		in.ParentSnapshotId = aws.String(parent)
	}
	started, err := client.StartSnapshot(ctx, in)
	if err != nil {
		return "", fmt.Errorf("start a snapshot of %s: %w", path, err)
	}
	id := aws.ToString(started.SnapshotId)
	// Only the blocks where the image holds data are read (a sparse image
	// of a big volume reads in the time its data takes), and the parent's
	// blocks, which zeros in the image must clear.
	visit, err := blocksWithData(f, size)
	if err != nil {
		return "", err
	}
	for i := range inParent {
		visit = append(visit, i)
	}
	slices.Sort(visit)
	visit = slices.Compact(visit)
	var total int64
	for _, i := range visit {
		total += min(snapshotBlockSize, size-int64(i)*snapshotBlockSize)
	}
	bar := newProgress(stderr, "import "+filepath.Base(path), total)
	var mu sync.Mutex
	changed := int32(0)
	err = forEachBlock(ctx, len(visit), func(ctx context.Context, buf []byte, i int) error {
		index := visit[i]
		n, err := f.ReadAt(buf, int64(index)*snapshotBlockSize)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		clear(buf[n:]) // the image's tail, past its last byte, reads as zeros
		defer bar.add(int64(n))
		if isZeros(buf) && !inParent[index] {
			return nil
		}
		sum := sha256.Sum256(buf)
		_, err = client.PutSnapshotBlock(ctx, &ebs.PutSnapshotBlockInput{
			SnapshotId: aws.String(id), BlockIndex: aws.Int32(index), BlockData: bytes.NewReader(buf),
			DataLength: aws.Int32(snapshotBlockSize), Checksum: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
			ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
		})
		if err != nil {
			return fmt.Errorf("block %d of %s: %w", index, id, err)
		}
		mu.Lock()
		changed++
		mu.Unlock()
		return nil
	})
	bar.end()
	if err != nil {
		return "", fmt.Errorf("snapshot %s is left incomplete (it expires): %w", id, err)
	}
	if _, err := client.CompleteSnapshot(ctx, &ebs.CompleteSnapshotInput{SnapshotId: aws.String(id), ChangedBlocksCount: aws.Int32(changed)}); err != nil {
		return "", fmt.Errorf("complete %s: %w", id, err)
	}
	return id, nil
}

// zeroBlock is what an absent block reads as.
var zeroBlock = make([]byte, snapshotBlockSize)

func isZeros(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }

// forEachBlock calls copy for blocks 0..n-1 from snapshotCopiers
// goroutines, each with its own block buffer; the first error stops the
// others and is returned.
func forEachBlock(ctx context.Context, n int, copy func(ctx context.Context, buf []byte, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(snapshotCopiers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, snapshotBlockSize)
			for i := range next {
				if err := copy(ctx, buf, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// blocksWithData lists the blocks of f (size bytes) that hold data, as the
// file system's SEEK_DATA and SEEK_HOLE tell: a hole reads as zeros, and a
// snapshot holds no block of zeros. Where the file system cannot tell (or
// f is a device), every block is listed.
func blocksWithData(f *os.File, size int64) ([]int32, error) {
	var blocks []int32
	last := int64(-1)
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data after off
		}
		if err != nil {
			blocks = blocks[:0]
			for i := int64(0); i < (size+snapshotBlockSize-1)/snapshotBlockSize; i++ {
				blocks = append(blocks, int32(i))
			}
			return blocks, nil
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
		hole = min(hole, size)
		for i := max(data/snapshotBlockSize, last+1); i <= (hole-1)/snapshotBlockSize; i++ {
			blocks = append(blocks, int32(i))
			last = i
		}
		off = hole
	}
	return blocks, nil
}
