package s3_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/blob/s3"
)

// BenchmarkPutBlocks: fresh 512 KiB objects PUT 8 at once (the volume
// engine's UploadConcurrency), create-only and with their SHA-256 given,
// as a cut uploads blocks, to a versitygw on loopback: by default (CRC-32C,
// unsigned payload) and with SignPayload; and, to weigh what create-only
// costs the server (versitygw takes a lock file per conditional PUT), by
// default without If-None-Match. Besides the rate it reports the CPU each
// PUT cost the server and this process: on a small machine that runs
// both, their sum is what bounds an upload. Run with -count to interleave
// them.
func BenchmarkPutBlocks(b *testing.B) {
	const size, inFlight = 512 << 10, 8
	srv := blobtest.StartVersityGW(b)
	blocks := make([][]byte, 64)
	sums := make([][32]byte, len(blocks))
	for i := range blocks {
		blocks[i] = make([]byte, size)
		rand.Read(blocks[i])
		sums[i] = sha256.Sum256(blocks[i])
	}
	for _, c := range []struct {
		name          string
		sign, noMatch bool
	}{
		{name: "crc32c"},
		{name: "signed", sign: true},
		{name: "crc32c-unconditional", noMatch: true},
	} {
		b.Run(c.name, func(b *testing.B) {
			st := srv.StoreWith(b, func(cfg *s3.Config) { cfg.SignPayload = c.sign })
			ctx := context.Background()
			b.SetBytes(size)
			serverBefore, serverOK := srv.CPUTime()
			selfBefore := selfCPUTime()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range inFlight {
				wg.Go(func() {
					for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
						k := i % len(blocks)
						// The key, not the content, must be fresh: versitygw
						// stores every PUT in full.
						if _, err := st.Put(ctx, fmt.Sprintf("blocks/%d", i), blocks[k], blob.PutOptions{IfNoneMatch: !c.noMatch, SHA256: &sums[k]}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if serverAfter, ok := srv.CPUTime(); ok && serverOK {
				b.ReportMetric(float64(serverAfter-serverBefore)/float64(time.Millisecond)/float64(b.N), "server-ms/op")
			}
			b.ReportMetric(float64(selfCPUTime()-selfBefore)/float64(time.Millisecond)/float64(b.N), "client-ms/op")
		})
	}
}

// selfCPUTime is this process's CPU time, user and system.
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
