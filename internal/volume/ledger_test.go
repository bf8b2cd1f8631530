package volume

import (
	"context"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// BenchmarkWriteFlush: a 4 KiB write then Flush, as a database commit does,
// with cuts every second; ns/op includes the journal fsync. It shows what
// the ledger (ledger.go) costs on the hot path: one ledger write on the
// first Flush after each cut, so nothing measurable per Flush.
func BenchmarkWriteFlush(b *testing.B) {
	ctx := context.Background()
	e := benchEngine(b, blobtest.NewFS(b), 256<<20, 256<<20, time.Second)
	if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-FLUSH", SizeBytes: gib}); err != nil {
		b.Fatal(err)
	}
	v, _ := e.Volume("vol-FLUSH")
	data := make([]byte, 4096)
	b.ResetTimer()
	for i := range b.N {
		data[0] = byte(i)
		if err := v.WriteAt(ctx, data, int64(i%4096)*4096); err != nil {
			b.Fatal(err)
		}
		if err := v.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
