package scsi

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
)

// TestCompareAndWriteIsAtomic runs several nexuses incrementing one
// counter block with COMPARE AND WRITE, retrying on MISCOMPARE, the way
// VMware's ATS locking does. If two CAWs could interleave, increments
// would be lost.
func TestCompareAndWriteIsAtomic(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	const workers, each = 4, 50
	h.wantGood(h.run(cdb10(opWrite10, 0, 100, 1), make([]byte, 512)))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			nexus := fmt.Sprintf("iqn.worker,i,0x%d", w)
			ctx := context.Background()
			exec := func(cdb, out []byte) Response {
				return h.d.Execute(ctx, &Command{Nexus: nexus, CDB: cdb, DataOut: out, ExpectedDataTransferLength: uint32(max(len(out), 512)), Write: len(out) > 0, Read: len(out) == 0})
			}
			exec([]byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil) // power-on UA
			caw := cdb16(opCompareAndWrite, 0, 100, 0)
			caw[13] = 1
			for done := 0; done < each; {
				r := exec(cdb10(opRead10, 0, 100, 1), nil)
				if r.Status != StatusGood {
					errs <- fmt.Errorf("read status %#x", r.Status)
					return
				}
				next := make([]byte, 512)
				binary.BigEndian.PutUint64(next, binary.BigEndian.Uint64(r.DataIn)+1)
				r = exec(caw, append(bytes.Clone(r.DataIn), next...))
				switch k, _ := parseSense(r.Sense); {
				case r.Status == StatusGood:
					done++
				case k == SenseMiscompare:
				default:
					errs <- fmt.Errorf("CAW status %#x sense % x", r.Status, r.Sense)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := binary.BigEndian.Uint64(h.run(cdb10(opRead10, 0, 100, 1), nil).DataIn)
	if got != workers*each {
		t.Fatalf("counter %d after %d increments: COMPARE AND WRITE is not atomic", got, workers*each)
	}
}

// TestConcurrentReadWrite writes distinct blocks from many goroutines and
// reads them back, under the race detector in CI.
func TestConcurrentReadWrite(t *testing.T) {
	h := newHarness(t, DeviceOptions{ThinProvisioning: true})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			ctx := context.Background()
			nexus := fmt.Sprintf("iqn.rw,i,0x%d", w)
			h.d.Execute(ctx, &Command{Nexus: nexus, CDB: []byte{opTestUnitReady, 0, 0, 0, 0, 0}}) // power-on UA
			for i := 0; i < 40; i++ {
				lba := uint32(w*200 + i*4)
				data := pattern(4*512, byte(w*40+i))
				if r := h.d.Execute(ctx, &Command{Nexus: nexus, CDB: cdb10(opWrite10, 0, lba, 4), DataOut: data, ExpectedDataTransferLength: 2048, Write: true}); r.Status != StatusGood {
					t.Errorf("worker %d write status %#x", w, r.Status)
					return
				}
				r := h.d.Execute(ctx, &Command{Nexus: nexus, CDB: cdb10(opRead10, 0, lba, 4), ExpectedDataTransferLength: 2048, Read: true})
				if r.Status != StatusGood || !bytes.Equal(r.DataIn, data) {
					t.Errorf("worker %d block %d read back differs", w, lba)
					return
				}
				if i%10 == 0 {
					h.d.Execute(ctx, &Command{Nexus: nexus, CDB: cdb10(opSyncCache10, 0, 0, 0), Read: true})
				}
			}
		}(w)
	}
	wg.Wait()
}
