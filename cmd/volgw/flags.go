package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/volgw/volgw/internal/bytesize"
	"github.com/volgw/volgw/internal/volume"
)

// serveOptions are the flags of `volgw serve`. The flag names and defaults
// are a contract: tests and users rely on them.
type serveOptions struct {
	Listen               string
	ISCSIListen          string
	DataDir              string
	Region               string
	AccountID            string
	Store                string // object store URL; "" means file://<data-dir>/store
	CacheDiskSize        int64
	UploadBufferDiskSize int64
	LogLevel             slog.Level
	// PprofListen is the address of the opt-in profiling endpoint ("":
	// off); a bare ":port" listens on loopback.
	PprofListen string
	// MemoryLimit is the Go runtime's soft memory limit in bytes (0: the
	// default, defaultMemoryLimit).
	MemoryLimit int64
	// ISCSIWriteBuffer bounds the write data the iSCSI target holds
	// (iscsi.Config.WriteBuffer).
	ISCSIWriteBuffer int64
	// StatusSampleInterval is how often the status page samples each
	// volume's recovery-point lag for its chart of the last hour.
	StatusSampleInterval time.Duration
	// RecoveryPointRetention keeps every recovery point of a volume for
	// this long (volume.Config.RecoveryPointRetention); 0: only the latest.
	RecoveryPointRetention time.Duration
	// EncryptionKeys is the keyring file (internal/seal); "" reads the
	// keyring from $VOLGW_ENCRYPTION_KEYS, if set. EncryptionDefaultKey
	// names the key volumes created without KMSKey are sealed with.
	EncryptionKeys       string
	EncryptionDefaultKey string
	// Compress compresses blocks and pages before upload.
	Compress bool
	// WholeBlocks uploads every changed block whole (no patches).
	WholeBlocks bool
	// GCGrace is the engine's GC grace period (volume.Config.GCGrace):
	// what nothing names is reclaimed this long after it was last written.
	GCGrace time.Duration
	// GCInterval is how often the engine's GC runs.
	GCInterval time.Duration
}

// defaultMemoryLimit is the Go runtime's soft memory limit when
// --memory-limit is not given: the garbage collector works harder as the
// heap nears it instead of letting it double (GOGC) under a burst of
// uploads. It is a target for the heap, not a cap: memory the process
// needs is never refused, it costs GC time instead.
const defaultMemoryLimit = 192 << 20

// defaultISCSIWriteBuffer is the iSCSI target's write buffer when
// --iscsi-write-buffer is not given: 16 writes of 2 MiB (qemu's request
// size) in flight, two for each of 8 volumes written at once, which keeps
// each volume's journal writing one batch while the next fills. More
// buys no write rate on 2 CPUs and costs the control plane: every write
// in flight is a goroutine that wants a CPU (bench/control.sh).
const defaultISCSIWriteBuffer = 32 << 20

// minISCSIWriteBuffer is the smallest --iscsi-write-buffer accepted: two
// of qemu's 2 MiB writes in flight at once. (A write larger than the
// buffer is still served, alone.)
const minISCSIWriteBuffer = 4 << 20

// defaultGCInterval is how often GC runs unless --gc-interval says: a
// superseded object is reclaimed within G plus this of being superseded.
const defaultGCInterval = time.Minute

// retentionGCInterval is the GC interval with recovery-point retention
// on, unless --gc-interval says.
const retentionGCInterval = 15 * time.Minute

// minGCGrace bounds --gc-grace from below: a single PUT, and a root then
// its head, must land within half of it (the lease), on a slow store too.
const minGCGrace = 10 * time.Second

func parseServeFlags(args []string, stderr io.Writer) (serveOptions, error) {
	o := serveOptions{}
	fs := flag.NewFlagSet("volgw serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "address of the AWS API (HTTP)")
	fs.StringVar(&o.ISCSIListen, "iscsi-listen", "127.0.0.1:3260", "address of the iSCSI target")
	fs.StringVar(&o.DataDir, "data-dir", "./volgw-data", "directory of the catalog, local disks and credentials")
	fs.StringVar(&o.Region, "region", "us-east-1", "region in ARNs and in the SigV4 credential scope")
	fs.StringVar(&o.AccountID, "account-id", "123456789012", "12-digit account ID in ARNs")
	fs.StringVar(&o.Store, "store", "", "object store URL: file:///dir or s3://bucket/prefix?endpoint=…&region=…&path_style=true (default file://<data-dir>/store)")
	cache := sizeFlag(10 << 30)
	buffer := sizeFlag(5 << 30)
	fs.Var(&cache, "cache-disk-size", "size of the appliance's cache disk, created sparse on first start (e.g. 10GiB)")
	fs.Var(&buffer, "upload-buffer-disk-size", "size of the appliance's upload-buffer disk, created sparse on first start (e.g. 5GiB)")
	fs.StringVar(&o.PprofListen, "pprof-listen", "", "serve net/http/pprof on this address, e.g. 127.0.0.1:6060 (off by default; a bare :port means loopback)")
	memLimit := sizeFlag(defaultMemoryLimit)
	fs.Var(&memLimit, "memory-limit", "soft limit of the Go runtime's memory (GC target), e.g. 128MiB")
	writeBuf := sizeFlag(defaultISCSIWriteBuffer)
	fs.Var(&writeBuf, "iscsi-write-buffer", "memory for the write data the iSCSI target holds at once, all sessions together; a write waits for space before its data is solicited (R2T), e.g. 64MiB")
	fs.DurationVar(&o.StatusSampleInterval, "status-sample-interval", 10*time.Second, "how often the status page (/status) samples each volume's recovery-point lag for its one-hour chart (1s to 1m)")
	fs.DurationVar(&o.RecoveryPointRetention, "recovery-point-retention", 0, "keep every recovery point of a volume this long, e.g. 24h, to snapshot any of them (volgw recovery-points); 0 keeps only the latest, as AWS does")
	fs.StringVar(&o.EncryptionKeys, "encryption-keys", "", "keyring file (mode 0600) of the keys volumes are sealed with, one \"<name> <base64 32 bytes>\" per line (volgw key new NAME makes one); default: $"+envEncryptionKeys)
	fs.StringVar(&o.EncryptionDefaultKey, "encryption-default-key", "", "seal volumes created without a KMSKey with this key of the keyring (default: such volumes are stored unsealed)")
	fs.BoolVar(&o.Compress, "compress", false, "compress blocks and pages (zstd) before they are uploaded, when that saves at least 1/32")
	fs.BoolVar(&o.WholeBlocks, "whole-blocks", false, "upload every changed 512 KiB block whole, never as a patch of its changed 4 KiB sectors (stores readable by volgw releases from before patches)")
	fs.DurationVar(&o.GCGrace, "gc-grace", volume.DefaultGCGrace, "how long after it was last written an object nothing names (a superseded block, page or recovery point) is reclaimed from the store; every gateway sharing a store must use the same (at least 10s)")
	fs.DurationVar(&o.GCInterval, "gc-interval", defaultGCInterval, "how often garbage collection runs (at least 1s; default 15m with --recovery-point-retention, whose every retained point a round reads)")
	level := "info"
	fs.StringVar(&level, "log-level", level, "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return o, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "volgw serve: unexpected argument %q\n", fs.Arg(0))
		return o, errUsage
	}
	o.CacheDiskSize, o.UploadBufferDiskSize, o.MemoryLimit = int64(cache), int64(buffer), int64(memLimit)
	o.ISCSIWriteBuffer = int64(writeBuf)
	if o.ISCSIWriteBuffer < minISCSIWriteBuffer {
		fmt.Fprintf(stderr, "volgw serve: --iscsi-write-buffer %d: want at least %dMiB\n", o.ISCSIWriteBuffer, minISCSIWriteBuffer>>20)
		return o, errUsage
	}
	if o.StatusSampleInterval < time.Second || o.StatusSampleInterval > time.Minute {
		fmt.Fprintf(stderr, "volgw serve: --status-sample-interval %s: want 1s to 1m\n", o.StatusSampleInterval)
		return o, errUsage
	}
	if o.MemoryLimit < minMemoryLimit {
		fmt.Fprintf(stderr, "volgw serve: --memory-limit %d: want at least %dMiB\n", o.MemoryLimit, minMemoryLimit>>20)
		return o, errUsage
	}
	if o.RecoveryPointRetention < 0 {
		fmt.Fprintf(stderr, "volgw serve: --recovery-point-retention %v: must not be negative\n", o.RecoveryPointRetention)
		return o, errUsage
	}
	gcIntervalSet := false
	fs.Visit(func(f *flag.Flag) { gcIntervalSet = gcIntervalSet || f.Name == "gc-interval" })
	if !gcIntervalSet && o.RecoveryPointRetention > 0 {
		// A round reads one root per retained point (a day of them is
		// thousands a volume): what retention keeps is reclaimed only as
		// it leaves the window anyway, so rounds need not be frequent.
		o.GCInterval = retentionGCInterval
	}
	if o.GCGrace < minGCGrace {
		fmt.Fprintf(stderr, "volgw serve: --gc-grace %v: want at least %v\n", o.GCGrace, minGCGrace)
		return o, errUsage
	}
	if o.GCInterval < time.Second {
		fmt.Fprintf(stderr, "volgw serve: --gc-interval %v: want at least 1s\n", o.GCInterval)
		return o, errUsage
	}
	if o.PprofListen != "" {
		host, port, err := net.SplitHostPort(o.PprofListen)
		if err != nil {
			fmt.Fprintf(stderr, "volgw serve: --pprof-listen %q: %v\n", o.PprofListen, err)
			return o, errUsage
		}
		if host == "" {
			// Profiles show memory contents and internals: loopback
			// unless an address is given explicitly.
			o.PprofListen = net.JoinHostPort("127.0.0.1", port)
		}
	}
	if err := o.LogLevel.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(stderr, "volgw serve: --log-level: %v\n", err)
		return o, errUsage
	}
	for _, a := range []struct{ name, v string }{{"--listen", o.Listen}, {"--iscsi-listen", o.ISCSIListen}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			fmt.Fprintf(stderr, "volgw serve: %s %q: %v\n", a.name, a.v, err)
			return o, errUsage
		}
	}
	if len(o.AccountID) != 12 || strings.Trim(o.AccountID, "0123456789") != "" {
		fmt.Fprintf(stderr, "volgw serve: --account-id %q: want 12 digits\n", o.AccountID)
		return o, errUsage
	}
	if o.Region == "" || strings.Trim(o.Region, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		fmt.Fprintf(stderr, "volgw serve: --region %q is not a region name\n", o.Region)
		return o, errUsage
	}
	return o, nil
}

// minMemoryLimit is the smallest --memory-limit accepted: below it the
// collector would run almost continuously for the buffers one busy volume
// needs.
const minMemoryLimit = 32 << 20

// loopbackHost reports whether host (of a listen address) is reachable only
// from this machine.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sizeFlag is a byte count written as 1073741824, 512MiB, 10GiB, 1TiB (or
// the decimal KB/MB/GB/TB).
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *sizeFlag) Set(v string) error {
	n, err := bytesize.Parse(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}
