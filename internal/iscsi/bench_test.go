package iscsi

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/scsi"
)

// memBackend is a scsi.Backend in memory, so a benchmark measures the
// target and not a file system.
type memBackend struct {
	mu   sync.Mutex // guards data
	data []byte
}

func (m *memBackend) ReadAt(_ context.Context, p []byte, off int64) error {
	m.mu.Lock()
	copy(p, m.data[off:])
	m.mu.Unlock()
	return nil
}

func (m *memBackend) WriteAt(_ context.Context, p []byte, off int64) error {
	m.mu.Lock()
	copy(m.data[off:], p)
	m.mu.Unlock()
	return nil
}

func (m *memBackend) Flush(context.Context) error { return nil }

func (m *memBackend) Unmap(_ context.Context, off, n int64) error {
	m.mu.Lock()
	clear(m.data[off : off+n])
	m.mu.Unlock()
	return nil
}

func (m *memBackend) Size() int64 { return int64(len(m.data)) }

// startMemTarget serves a 64 MiB in-memory LUN 0 on 127.0.0.1, logging
// only warnings.
func startMemTarget(tb testing.TB) string {
	tb.Helper()
	dev, err := scsi.NewDevice(&memBackend{data: make([]byte, 64<<20)}, scsi.DeviceOptions{SerialNumber: "vol-0123456789abcdef0"})
	if err != nil {
		tb.Fatal(err)
	}
	return startLUTarget(tb, scsi.NewLUNTable(map[uint64]scsi.LogicalUnit{0: dev}))
}

// BenchmarkWrite4KQD32 drives the target over loopback as qemu-img bench
// does through libiscsi: 4 KiB WRITE (10)s, sequential, 32 outstanding.
// "immediate" negotiates what libiscsi asks for (ImmediateData=Yes,
// InitialR2T=No), so each write's data comes in its command PDU; "r2t"
// makes the target solicit every write's data (ImmediateData=No,
// InitialR2T=Yes). The initiator allocates nothing per command, so
// allocs/op and B/op are the target's.
func BenchmarkWrite4KQD32(b *testing.B) {
	for _, mode := range []struct {
		name string
		keys []string
	}{
		{"immediate", []string{"ImmediateData", "Yes", "InitialR2T", "No", "MaxRecvDataSegmentLength", "262144", "FirstBurstLength", "262144"}},
		{"r2t", []string{"ImmediateData", "No", "InitialR2T", "Yes", "MaxRecvDataSegmentLength", "262144"}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			addr := startMemTarget(b)
			r := dialRaw(b, addr, testIQN, mode.keys...)
			benchWrites(b, r, 32)
		})
	}
}

// benchWrites runs b.N 4 KiB writes with qd outstanding.
func benchWrites(b *testing.B, r *rawInit, qd int) {
	pw := newPipelinedWriter(b, r, qd)
	b.ReportAllocs()
	b.SetBytes(pipelinedWriteSize)
	rBefore, wBefore := syscallCounts()
	cpuBefore := cpuTime()
	b.ResetTimer()
	if err := pw.run(b.N); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu := cpuTime() - cpuBefore
	rAfter, wAfter := syscallCounts()
	// CPU time, unlike ns/op, hardly depends on what else the machine
	// runs; it includes the initiator's.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	// Both ends are in this process: the initiator makes one write per
	// PDU it sends and reads in bufio.Reader-sized gulps.
	b.ReportMetric(float64(rAfter-rBefore)/float64(b.N), "readcalls/op")
	b.ReportMetric(float64(wAfter-wBefore)/float64(b.N), "writecalls/op")
}

// TestWriteAllocations holds the target's 4 KiB write path, immediate
// data or R2T, to its contract: in steady state a command allocates
// nothing (tasks, R2T sequences, PDUs and buffers are reused). The
// initiator allocates nothing per command either, so the process's
// allocations are the target's; a few are allowed for the runtime's own
// (a GC emptying the pools, timers).
func TestWriteAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	for _, mode := range []struct {
		name string
		keys []string
	}{
		{"immediate", []string{"ImmediateData", "Yes", "InitialR2T", "No"}},
		{"r2t", []string{"ImmediateData", "No", "InitialR2T", "Yes"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			addr := startMemTarget(t)
			pw := newPipelinedWriter(t, dialRaw(t, addr, testIQN, mode.keys...), 32)
			if err := pw.run(2000); err != nil { // warm the pools and workers
				t.Fatal(err)
			}
			const n = 5000
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := pw.run(n); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			if per := float64(after.Mallocs-before.Mallocs) / n; per > 0.05 {
				t.Errorf("%.3f allocations per 4 KiB write, want none", per)
			}
		})
	}
}

// pipelinedWriteSize is the size of each pipelinedWriter write.
const pipelinedWriteSize = 4096

// pipelinedWriter issues sequential 4 KiB WRITE (10)s with qd outstanding,
// as qemu-img bench does through libiscsi: the caller's goroutine sends
// commands as slots free up, another receives responses and answers
// R2Ts. It allocates nothing per command.
type pipelinedWriter struct {
	r *rawInit
	// slots holds, per outstanding command, its PDU images: the command
	// (with immediate data when negotiated) and the Data-Out for an R2T.
	slots []pipelinedSlot
	free  chan int // slots not in use
	lba   uint32
}

type pipelinedSlot struct {
	cmd, dataOut []byte
}

// ittBase offsets slot numbers into ITTs past those rawInit used.
const ittBase = 1 << 20

func newPipelinedWriter(tb testing.TB, r *rawInit, qd int) *pipelinedWriter {
	tb.Helper()
	const size = pipelinedWriteSize
	if r.d.header || r.d.data {
		tb.Fatal("pipelinedWriter runs without digests")
	}
	pw := &pipelinedWriter{r: r, slots: make([]pipelinedSlot, qd), free: make(chan int, qd)}
	cmdSN := r.cmdSN
	for i := range pw.slots {
		imm := 0
		if r.imm {
			imm = size
		}
		cmd := r.command(0, false, true, true, size, cdb10(0x2a, 0, size/512))
		putU24(cmd[5:8], uint32(imm))
		pw.slots[i].cmd = append(append(make([]byte, 0, bhsLen+imm), cmd[:]...), make([]byte, imm)...)
		do := r.dataOut(0, 0, 0, 0, nil, true)
		putU24(do[5:8], size)
		pw.slots[i].dataOut = append(append(make([]byte, 0, bhsLen+size), do[:]...), make([]byte, size)...)
		pw.free <- i
	}
	r.cmdSN = cmdSN // command() above consumed CmdSNs the slots did not use
	return pw
}

// run issues n writes and returns once all are answered.
func (pw *pipelinedWriter) run(n int) error {
	const blocks = 64 << 20 / pipelinedWriteSize // 4 KiB blocks on the LUN
	r := pw.r
	errc := make(chan error, 1)
	go func() {
		errc <- receiveWrites(r.br, n, func(itt uint32) { pw.free <- int(itt - ittBase) }, func(itt, ttt, off uint32) error {
			d := pw.slots[itt-ittBase].dataOut
			put32(d[16:20], itt)
			put32(d[20:24], ttt)
			put32(d[40:44], off)
			_, err := r.c.Write(d)
			return err
		})
	}()
	for range n {
		s := <-pw.free
		c := pw.slots[s].cmd
		put32(c[16:20], uint32(ittBase+s))
		put32(c[24:28], r.cmdSN)
		r.cmdSN++
		put32(c[32+2:32+6], pw.lba%blocks*(pipelinedWriteSize/512))
		pw.lba++
		if _, err := r.c.Write(c); err != nil {
			return err
		}
	}
	return <-errc
}

// receiveWrites reads n SCSI Responses, each reported by done, and
// answers each R2T (one Data-Out PDU) with answer.
func receiveWrites(br *bufio.Reader, n int, done func(itt uint32), answer func(itt, ttt, off uint32) error) error {
	var h header
	for got := 0; got < n; {
		if err := readHeader(br, &h, digests{}); err != nil {
			return err
		}
		if err := discardData(br, h.dataLen(), digests{}); err != nil {
			return err
		}
		switch h.opcode() {
		case opSCSIResp:
			if h.bhs[3] != 0 {
				return fmt.Errorf("write status %#x", h.bhs[3])
			}
			got++
			done(h.itt())
		case opR2T:
			if be32(h.bhs[44:48]) != pipelinedWriteSize {
				return fmt.Errorf("R2T for %d bytes", be32(h.bhs[44:48]))
			}
			if err := answer(h.itt(), h.ttt(), h.bufferOffset()); err != nil {
				return err
			}
		case opNopIn:
		default:
			return fmt.Errorf("unexpected opcode %#x", h.opcode())
		}
	}
	return nil
}

// cpuTime is the user and system time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// syscallCounts returns the process's read and write system calls so far
// (syscr and syscw of /proc/self/io), or zeros where there is no such file.
func syscallCounts() (reads, writes int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}
