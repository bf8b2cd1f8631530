package iscsi

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"
)

// TestWriteBuffersLimit: grants stay within the limit, go out in arrival
// order as space comes back, and a buffer larger than the limit is
// granted only alone. Every request comes from a session of its own
// (an account), so no share gets in the way.
func TestWriteBuffersLimit(t *testing.T) {
	wb := newWriteBuffers(1<<20, time.Now)
	sa, sb, s1, s2, sx := new(bufferAccount), new(bufferAccount), new(bufferAccount), new(bufferAccount), new(bufferAccount)
	a := wb.tryGet(sa, 512<<10)
	b := wb.tryGet(sb, 300<<10) // a 512 KiB class
	if a == nil || b == nil || len(b) != 300<<10 {
		t.Fatalf("two 512 KiB buffers within 1 MiB: %d, %d bytes", len(a), len(b))
	}
	if c := wb.tryGet(sx, 4096); c != nil {
		t.Fatal("granted past the limit")
	}
	w1 := wb.wait(s1, 1<<20) // needs everything
	w2 := wb.wait(s2, 4096)  // fits as soon as one comes back, but is second
	wb.put(sa, a)
	select {
	case <-w1.ch:
		t.Fatal("1 MiB granted with 512 KiB in use")
	case <-w2.ch:
		t.Fatal("a later request overtook the first")
	default:
	}
	if c := wb.tryGet(sx, 4096); c != nil {
		t.Fatal("tryGet overtook the waiting requests")
	}
	wb.put(sb, b)
	big := <-w1.ch
	if len(big) != 1<<20 {
		t.Fatalf("granted %d bytes, want 1 MiB", len(big))
	}
	if used, kept, _ := wb.stats(); used+kept > 1<<20 {
		t.Fatalf("used %d + kept %d past the 1 MiB limit", used, kept)
	}
	wb.put(s1, big)
	small := <-w2.ch
	wb.put(s2, small)
	if huge := wb.tryGet(sx, 4<<20); huge == nil {
		t.Fatal("a buffer larger than the limit is not granted when nothing is in use")
	} else {
		if c := wb.tryGet(sa, 4096); c != nil {
			t.Fatal("granted beside a buffer larger than the limit")
		}
		wb.put(sx, huge)
	}
	if used, kept, waiting := wb.stats(); used != 0 || kept > 1<<20 || waiting != 0 {
		t.Fatalf("after all puts: used %d kept %d waiting %d", used, kept, waiting)
	}
}

// TestWriteBuffersReuse: a steady load reuses the kept buffers, and they
// are let go once idle.
func TestWriteBuffersReuse(t *testing.T) {
	now := time.Unix(0, 0)
	wb := newWriteBuffers(8<<20, func() time.Time { return now })
	s := new(bufferAccount)
	first := wb.tryGet(s, 2<<20)
	wb.put(s, first)
	for range 10 {
		b := wb.tryGet(s, 2<<20)
		if &b[0] != &first[0] {
			t.Fatal("a kept buffer was not reused")
		}
		wb.put(s, b)
	}
	if _, kept, _ := wb.stats(); kept != 2<<20 {
		t.Fatalf("kept %d bytes, want one 2 MiB buffer", kept)
	}
	now = now.Add(writeBufferIdle)
	wb.trimIdle()
	if _, kept, _ := wb.stats(); kept != 0 {
		t.Fatalf("kept %d bytes after %v idle, want 0", kept, writeBufferIdle)
	}
}

// TestWriteBuffersCancel: a wait given up returns a buffer granted in the
// meantime, and leaves the queue.
func TestWriteBuffersCancel(t *testing.T) {
	wb := newWriteBuffers(64<<10, time.Now)
	sa, sw := new(bufferAccount), new(bufferAccount)
	a := wb.tryGet(sa, 64<<10)
	w := wb.wait(sw, 64<<10)
	stop := make(chan struct{})
	close(stop)
	if b := wb.await(context.Background(), w, stop); b != nil {
		t.Fatal("await returned a buffer after stop")
	}
	if _, _, waiting := wb.stats(); waiting != 0 {
		t.Fatalf("%d waiting after a cancelled wait", waiting)
	}
	w = wb.wait(sw, 64<<10)
	wb.put(sa, a) // granted to w
	if b := wb.await(context.Background(), w, stop); b != nil {
		// Either outcome is allowed; the space must come back either way.
		wb.put(sw, b)
	}
	if used, _, _ := wb.stats(); used != 0 || sa.used != 0 || sw.used != 0 {
		t.Fatalf("%d bytes still in use (accounts: %d, %d)", used, sa.used, sw.used)
	}
}

// TestWriteBuffersShare: a session holds at most half the buffer, save
// one buffer of any size when it holds nothing; its requests beyond that
// wait for its own buffers and let other sessions' requests pass.
func TestWriteBuffersShare(t *testing.T) {
	wb := newWriteBuffers(1<<20, time.Now)
	stalled, other := new(bufferAccount), new(bufferAccount)
	var held [][]byte
	for range 2 {
		b := wb.tryGet(stalled, 256<<10)
		if b == nil {
			t.Fatal("a session refused buffers within half the limit")
		}
		held = append(held, b)
	}
	if b := wb.tryGet(stalled, 4096); b != nil {
		t.Fatal("a session was granted past half the limit")
	}
	over := wb.wait(stalled, 256<<10) // first in line, beyond its share
	next := wb.wait(other, 512<<10)   // behind it, within its share
	select {
	case b := <-next.ch:
		wb.put(other, b)
	default:
		t.Fatal("a request beyond its session's share held up another session's")
	}
	select {
	case <-over.ch:
		t.Fatal("granted beyond the session's share")
	default:
	}
	wb.put(stalled, held[0]) // its own buffer back: now within its share
	b := <-over.ch
	wb.put(stalled, b)
	wb.put(stalled, held[1])
	// A session holding nothing takes one buffer larger than its share.
	if big := wb.tryGet(other, 1<<20); big == nil {
		t.Fatal("a session holding nothing was refused one buffer of the whole limit")
	} else {
		wb.put(other, big)
	}
	if used, _, waiting := wb.stats(); used != 0 || waiting != 0 || stalled.used != 0 || other.used != 0 {
		t.Fatalf("used %d waiting %d, accounts %d and %d", used, waiting, stalled.used, other.used)
	}
}

// TestRawStalledSessionShare: an initiator that never sends the data its
// R2Ts solicit holds at most half the server's write buffer, and another
// session's writes still go through.
func TestRawStalledSessionShare(t *testing.T) {
	const size = 64 << 10
	tt := startTargetConfig(t, 1<<20, nil, Config{WriteBuffer: 4 * size})
	stalled := dialRaw(t, tt.addr, testIQN, "InitialR2T", "Yes", "ImmediateData", "No")
	// Four writes that would take the whole buffer; their data never comes.
	var r2ts int
	for i := range 4 {
		stalled.send(stalled.command(stalled.nextITT(), false, true, true, size, cdb10(0x2a, uint32(i)*size/512, size/512)), nil)
	}
	waitFor(t, "the stalled session holds its share, the rest of its writes waiting", func() bool {
		used, _, waiting := tt.srv.writeBufs.stats()
		return used == 2*size && waiting == 2
	})
	for r2ts < 2 {
		if p := stalled.recv(); p.h.opcode() == opR2T {
			r2ts++
		}
	}
	other := dialRaw(t, tt.addr, testIQN, "InitialR2T", "Yes", "ImmediateData", "No")
	data := make([]byte, size)
	rand.Read(data)
	for i := range 3 {
		if s, _ := other.write(uint32(512+i*size/512), data); s != 0 {
			t.Fatalf("write %d of the other session: status %#x", i, s)
		}
	}
	if got := other.read(512, size, 1<<20); !bytes.Equal(got, data) {
		t.Fatal("the other session's data did not land")
	}
	stalled.c.Close()
	waitFor(t, "the stalled session's buffers come back when it ends", func() bool {
		used, _, waiting := tt.srv.writeBufs.stats()
		return used == 0 && waiting == 0
	})
}

// holdWrite starts a WRITE(10) on r with InitialR2T=Yes and no immediate
// data, and returns once its first R2T has arrived: the target has granted
// its buffer. finish sends the data and returns the status.
func holdWrite(t *testing.T, r *rawInit, lba uint32, data []byte) (finish func() byte) {
	t.Helper()
	itt := r.nextITT()
	edtl := uint32(len(data))
	r.send(r.command(itt, false, true, true, edtl, cdb10(0x2a, lba, uint16(edtl/512))), nil)
	p := r.recv()
	if p.h.opcode() != opR2T || be32(p.h.bhs[40:44]) != 0 || be32(p.h.bhs[44:48]) != edtl {
		t.Fatalf("opcode %#x offset %d length %d, want an R2T for all %d bytes", p.h.opcode(), be32(p.h.bhs[40:44]), be32(p.h.bhs[44:48]), edtl)
	}
	return func() byte {
		r.sendData(itt, p.h.ttt(), data, 0, edtl)
		p := r.recv()
		if p.h.opcode() != opSCSIResp {
			t.Fatalf("opcode %#x, want SCSI Response", p.h.opcode())
		}
		return p.h.bhs[3]
	}
}

// waitFor polls cond until it holds (the target's state changes on its
// own goroutines); it fails the test after a generous minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// TestRawWriteBufferWait: with the server's write buffer held by one
// session's write, another session's write takes its unsolicited data and
// waits, soliciting the rest (R2T) only once the first returns its buffer;
// its data lands whole.
func TestRawWriteBufferWait(t *testing.T) {
	const size = 128 << 10
	tt := startTargetConfig(t, 1<<20, nil, Config{WriteBuffer: size})
	a := dialRaw(t, tt.addr, testIQN, "InitialR2T", "Yes", "ImmediateData", "No")
	b := dialRaw(t, tt.addr, testIQN, "InitialR2T", "No", "ImmediateData", "Yes", "FirstBurstLength", "16384", "MaxRecvDataSegmentLength", "8192")
	finishA := holdWrite(t, a, 0, make([]byte, size))

	data := make([]byte, size)
	rand.Read(data)
	done := make(chan byte, 1)
	go func() {
		status, _ := b.write(512, data) // 8 KiB immediate, 8 KiB unsolicited Data-Out, then R2T
		done <- status
	}()
	waitFor(t, "the second write waits for buffer space", func() bool {
		_, _, waiting := tt.srv.writeBufs.stats()
		return waiting == 1
	})
	select {
	case s := <-done:
		t.Fatalf("second write finished (status %#x) while the buffer was held", s)
	default:
	}
	if s := finishA(); s != 0 {
		t.Fatalf("first write: status %#x", s)
	}
	if s := <-done; s != 0 {
		t.Fatalf("second write: status %#x", s)
	}
	if got := b.read(512, size, 1<<20); !bytes.Equal(got, data) {
		t.Fatal("the waiting write's data did not land whole")
	}
	waitFor(t, "every buffer returned", func() bool {
		used, _, _ := tt.srv.writeBufs.stats()
		return used == 0
	})
}

// TestRawWriteBufferAbort: a write waiting for buffer space can be
// aborted, and a session that ends with one waiting leaves nothing queued.
func TestRawWriteBufferAbort(t *testing.T) {
	const size = 64 << 10
	tt := startTargetConfig(t, 1<<20, nil, Config{WriteBuffer: size})
	a := dialRaw(t, tt.addr, testIQN, "InitialR2T", "Yes", "ImmediateData", "No")
	b := dialRaw(t, tt.addr, testIQN, "InitialR2T", "Yes", "ImmediateData", "No")
	finishA := holdWrite(t, a, 0, make([]byte, size))

	itt := b.nextITT()
	cmdSN := b.cmdSN
	b.send(b.command(itt, false, true, true, size, cdb10(0x2a, 256, size/512)), nil)
	waitFor(t, "the write waits", func() bool {
		_, _, waiting := tt.srv.writeBufs.stats()
		return waiting == 1
	})
	var tmf [bhsLen]byte
	tmf[0] = opTMFReq | flagImmediate
	tmf[1] = flagFinal | tmfAbortTask
	tmfITT := b.nextITT()
	put32(tmf[16:20], tmfITT)
	put32(tmf[20:24], itt)
	put32(tmf[24:28], b.cmdSN)
	put32(tmf[32:36], cmdSN)
	b.send(tmf, nil)
	if p := b.recv(); p.h.opcode() != opTMFResp || p.h.bhs[2] != tmfComplete || p.h.itt() != tmfITT {
		t.Fatalf("TMF response opcode %#x response %d", p.h.opcode(), p.h.bhs[2])
	}
	if _, _, waiting := tt.srv.writeBufs.stats(); waiting != 0 {
		t.Fatalf("%d still waiting after the abort", waiting)
	}

	// A waiting write on a connection that closes.
	c := dialRaw(t, tt.addr, testIQN, "InitialR2T", "Yes", "ImmediateData", "No")
	c.send(c.command(c.nextITT(), false, true, true, size, cdb10(0x2a, 512, size/512)), nil)
	waitFor(t, "the write waits", func() bool {
		_, _, waiting := tt.srv.writeBufs.stats()
		return waiting == 1
	})
	c.c.Close()
	waitFor(t, "the closed session's wait ends", func() bool {
		_, _, waiting := tt.srv.writeBufs.stats()
		return waiting == 0
	})

	if s := finishA(); s != 0 {
		t.Fatalf("held write: status %#x", s)
	}
	// The aborted write sent nothing more: the next PDU is the NOP-In.
	if p := b.nop(b.nextITT(), nil); p.h.opcode() != opNopIn {
		t.Fatalf("opcode %#x after the abort, want only the NOP-In", p.h.opcode())
	}
	if s, _ := b.write(256, make([]byte, size)); s != 0 {
		t.Fatalf("write after the abort: status %#x", s)
	}
	waitFor(t, "every buffer returned", func() bool {
		used, _, _ := tt.srv.writeBufs.stats()
		return used == 0
	})
}
