package scsi

import (
	"context"
	"testing"
	"time"
)

// TestHotPathAllocations holds READ and WRITE to their contract: a read
// allocates only the buffer its data goes out in, a write nothing.
func TestHotPathAllocations(t *testing.T) {
	h := newHarness(t, DeviceOptions{ThinProvisioning: true})
	ctx := context.Background()
	data := pattern(4096, 1)
	read := &Command{Nexus: h.nexus, CDB: cdb10(opRead10, 0, 8, 8), ExpectedDataTransferLength: 4096, Read: true}
	write := &Command{Nexus: h.nexus, CDB: cdb10(opWrite10, 0, 8, 8), DataOut: data, ExpectedDataTransferLength: 4096, Write: true}
	if n := testing.AllocsPerRun(200, func() { h.d.Execute(ctx, write) }); n != 0 {
		t.Errorf("WRITE (10) allocates %v times per command, want 0", n)
	}
	if n := testing.AllocsPerRun(200, func() { h.d.Execute(ctx, read) }); n > 1 {
		t.Errorf("READ (10) allocates %v times per command, want 1 (the data buffer)", n)
	}
}

var benchSink []byte

// BenchmarkDeviceOverhead measures 4 KiB READ (10) and WRITE (10) through
// Device against the same I/O straight to the FileBackend in the same run,
// and reports the ratio: what the SCSI layer costs on top of the backend.
func BenchmarkDeviceOverhead(b *testing.B) {
	for _, write := range []bool{false, true} {
		name := "read4k"
		if write {
			name = "write4k"
		}
		b.Run(name, func(b *testing.B) {
			h := newHarness(b, DeviceOptions{})
			ctx := context.Background()
			buf := pattern(4096, 3)
			var cdb []byte
			if write {
				cdb = cdb10(opWrite10, 0, 0, 8)
			} else {
				cdb = cdb10(opRead10, 0, 0, 8)
			}
			cmd := &Command{Nexus: h.nexus, CDB: cdb, ExpectedDataTransferLength: 4096, Read: !write, Write: write}
			if write {
				cmd.DataOut = buf
			}
			h.d.Execute(ctx, cmd) // the power-on unit attention
			b.ResetTimer()
			// Alternate the two in rounds of 64 so that noise from other
			// work on the machine falls on both alike.
			var direct, device time.Duration
			for done := 0; done < b.N; {
				n := min(64, b.N-done)
				start := time.Now()
				for i := done; i < done+n; i++ {
					off := int64(i%256) * 4096
					if write {
						h.b.FileBackend.WriteAt(ctx, buf, off)
					} else {
						// Device allocates the same buffer; keep it on the heap.
						benchSink = make([]byte, 4096)
						h.b.FileBackend.ReadAt(ctx, benchSink, off)
					}
				}
				direct += time.Since(start)
				start = time.Now()
				for i := done; i < done+n; i++ {
					putU32(cdb[2:], uint32(i%256)*8)
					if r := h.d.Execute(ctx, cmd); r.Status != StatusGood {
						b.Fatalf("status %#x", r.Status)
					}
				}
				device += time.Since(start)
				done += n
			}
			b.ReportMetric(float64(direct.Nanoseconds())/float64(b.N), "direct-ns/op")
			b.ReportMetric(float64(device.Nanoseconds())/float64(b.N), "device-ns/op")
			b.ReportMetric(float64(device)/float64(direct), "device/direct")
		})
	}
}
