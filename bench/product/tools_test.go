package product

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// device is a block device as qemu-img opens it.
type device struct {
	name   string
	url    string // iscsi://…, nbd://… or a file
	direct bool   // qemu-img -t none: O_DIRECT, bypassing the client's page cache (s3backer's FUSE file)
	// limit > 0 confines qemu-img bench to the first limit bytes (the raw
	// driver's size option): where the round's data was written.
	limit int64
	// settle waits, untimed, until what was written is where the device
	// keeps it at rest (the object store, the file): run after every
	// timed write so that one device's write-back does not slow the next
	// device's measurement.
	settle func(ctx context.Context) error
}

func (d device) imageArgs() []string {
	var a []string
	if d.direct {
		a = append(a, "-t", "none")
	}
	if d.limit > 0 {
		return append(a, "--image-opts", fmt.Sprintf("driver=raw,size=%d,%s", d.limit, d.protocolOpts()))
	}
	return append(a, "-f", "raw", d.url)
}

// protocolOpts spells the device's URL as the protocol driver's options:
// under --image-opts qemu-img parses no URL.
func (d device) protocolOpts() string {
	switch {
	case strings.HasPrefix(d.url, "iscsi://"):
		// iscsi://portal/iqn/lun
		f := strings.SplitN(strings.TrimPrefix(d.url, "iscsi://"), "/", 3)
		return fmt.Sprintf("file.driver=iscsi,file.transport=tcp,file.portal=%s,file.target=%s,file.lun=%s", f[0], f[1], f[2])
	case strings.HasPrefix(d.url, "nbd://"):
		host, port, _ := strings.Cut(strings.TrimPrefix(d.url, "nbd://"), ":")
		return fmt.Sprintf("file.driver=nbd,file.server.type=inet,file.server.host=%s,file.server.port=%s", host, port)
	default:
		return "file.driver=file,file.filename=" + d.url
	}
}

var qemuBenchDone = regexp.MustCompile(`Run completed in ([0-9.]+) seconds`)

// qemuBench runs `qemu-img bench`: count requests of size bytes, depth in
// flight; step 0 is sequential, a large odd multiple of size hops around
// the device (qemu-img bench wraps at its end: as random as the tool
// allows). It returns the rate: MB/s (10^6 bytes) from 1 MiB requests,
// IOPS below.
func qemuBench(ctx context.Context, d device, write bool, size, step int64, depth, count int, extra ...string) (float64, string, error) {
	args := []string{"bench", "-c", strconv.Itoa(count), "-d", strconv.Itoa(depth), "-s", strconv.FormatInt(size, 10)}
	args = append(args, extra...)
	if step > 0 {
		args = append(args, "-S", strconv.FormatInt(step, 10))
	}
	if write {
		args = append(args, "-w")
	}
	out, err := run(ctx, 10*time.Minute, "qemu-img", append(args, d.imageArgs()...)...)
	if err != nil {
		return 0, "", err
	}
	m := qemuBenchDone.FindStringSubmatch(out)
	if m == nil {
		return 0, "", fmt.Errorf("no completion line in qemu-img bench output: %s", out)
	}
	secs, err := strconv.ParseFloat(m[1], 64)
	if err != nil || secs <= 0 {
		return 0, "", fmt.Errorf("bad run time %q in qemu-img bench output", m[1])
	}
	if size >= 1<<20 {
		return float64(count) * float64(size) / secs / 1e6, "MB/s", nil
	}
	return float64(count) / secs, "IOPS", nil
}

// qemuConvert copies src onto the device as a user copies an image onto
// a disk: `qemu-img convert -n -W -m 8` (8 requests in flight, in any
// order; qemu-img flushes the destination before it exits). It returns
// when it started and ended.
func qemuConvert(ctx context.Context, d device, src string) (start, end time.Time, err error) {
	args := []string{"convert", "-n", "-W", "-m", "8", "-f", "raw", "-O", "raw"}
	if d.direct {
		args = append(args, "-t", "none")
	}
	start = time.Now()
	_, err = run(ctx, 10*time.Minute, "qemu-img", append(args, src, d.url)...)
	return start, time.Now(), err
}

var perfAverage = regexp.MustCompile(`iops average (\d+) \((\d+) MB/s\)`)

// iscsiPerf runs iscsi-perf (reads only) for dur: blocks of 512 bytes per
// request, depth in flight, random or sequential. Its average over the run
// is the rate.
func iscsiPerf(d device, blocks, depth int, random bool, dur time.Duration) (float64, string, error) {
	args := []string{"-m", strconv.Itoa(depth), "-b", strconv.Itoa(blocks)}
	if random {
		args = append(args, "-r")
	}
	out, err := runInterrupted(dur, "iscsi-perf", append(args, d.url)...)
	if err != nil {
		return 0, "", err
	}
	all := perfAverage.FindAllStringSubmatch(out, -1)
	if len(all) == 0 {
		return 0, "", fmt.Errorf("no 'iops average' in iscsi-perf output: %s", out)
	}
	last := all[len(all)-1]
	if blocks*512 >= 1<<20 {
		mbs, _ := strconv.ParseFloat(last[2], 64)
		return mbs, "MB/s", nil
	}
	iops, _ := strconv.ParseFloat(last[1], 64)
	return iops, "IOPS", nil
}

// randomFile writes n bytes of fresh random data (ChaCha8 seeded from the
// system's random source: nothing dedups or compresses, between rounds
// either) and returns the path.
func randomFile(path string, n int64) (string, error) {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if _, err := io.CopyN(f, rand.NewChaCha8(seed), n); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// preallocate creates a file of size bytes with every block written (a
// non-zero pattern) and synced: tgtd's LUN reads no holes and allocates
// nothing on first write.
func preallocate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), size-off)], off); err != nil {
			return err
		}
	}
	return f.Sync()
}

// dropCaches writes back dirty pages and drops the clean page cache,
// dentries and inodes.
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}

// fillPageCache drops the caches, then reads a sparse file of all but
// reserve bytes of the available memory, so that the page cache holds it
// (clean pages of zeros; no disk I/O). From then on every page a writer
// touches for the first time needs reclaim first: the state of a machine
// whose memory is all in use by cache, which is the usual state of a
// server that has run for a while. Removing the file (the returned func)
// gives the memory back.
func fillPageCache(dir string, reserve int64) (filled int64, undo func(), err error) {
	if err := dropCaches(); err != nil {
		return 0, nil, fmt.Errorf("drop_caches: %w", err)
	}
	size := meminfo("MemAvailable") - reserve
	if size <= 0 {
		return 0, func() {}, nil
	}
	path := filepath.Join(dir, "pagecache-filler")
	f, err := os.Create(path)
	if err != nil {
		return 0, nil, err
	}
	undo = func() { os.Remove(path) }
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		undo()
		return 0, nil, err
	}
	before := meminfo("Cached")
	buf := make([]byte, 4<<20)
	for {
		_, err := f.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			undo()
			return 0, nil, err
		}
	}
	return meminfo("Cached") - before, undo, nil
}

// results gathers each row's samples per device, in the order rows first
// appear.
type results struct {
	rows    []string
	unit    map[string]string
	samples map[string]map[string][]float64
	errs    map[string]map[string]error
}

func newResults() *results {
	return &results{unit: map[string]string{}, samples: map[string]map[string][]float64{}, errs: map[string]map[string]error{}}
}

func (r *results) add(row, dev string, rate float64, unit string, err error) {
	if _, ok := r.samples[row]; !ok {
		r.rows = append(r.rows, row)
		r.samples[row] = map[string][]float64{}
		r.errs[row] = map[string]error{}
	}
	if err != nil {
		if r.errs[row][dev] == nil {
			r.errs[row][dev] = err
		}
		return
	}
	r.unit[row] = unit
	r.samples[row][dev] = append(r.samples[row][dev], rate)
}

func median(s []float64) float64 {
	s = slices.Clone(s)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// table renders the medians as markdown, each with its samples' range,
// and the ratio of the first device to each other one (> 1: the first is
// faster).
func (r *results) table(devs []string) string {
	var b strings.Builder
	b.WriteString("| row | unit |")
	for _, d := range devs {
		fmt.Fprintf(&b, " %s, median (min–max) |", d)
	}
	for _, d := range devs[1:] {
		fmt.Fprintf(&b, " %s ÷ %s |", devs[0], d)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---:|", 2*len(devs)-1) + "\n")
	for _, row := range r.rows {
		fmt.Fprintf(&b, "| %s | %s |", row, r.unit[row])
		med := map[string]float64{}
		for _, d := range devs {
			s := r.samples[row][d]
			switch {
			case len(s) > 0:
				med[d] = median(s)
				fmt.Fprintf(&b, " %s (%s–%s) |", num(med[d]), num(slices.Min(s)), num(slices.Max(s)))
			case r.errs[row][d] != nil:
				b.WriteString(" error |")
			default:
				b.WriteString(" – |")
			}
		}
		for _, d := range devs[1:] {
			if med[devs[0]] > 0 && med[d] > 0 {
				fmt.Fprintf(&b, " %.2f |", med[devs[0]]/med[d])
			} else {
				b.WriteString(" n/a |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// errors lists every device's first error per row.
func (r *results) errors() []string {
	var out []string
	for _, row := range r.rows {
		for d, err := range r.errs[row] {
			out = append(out, fmt.Sprintf("%s on %s: %v", row, d, err))
		}
	}
	return out
}
