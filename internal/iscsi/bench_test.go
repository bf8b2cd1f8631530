package iscsi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

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
	srv := NewServer(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err := srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: scsi.NewLUNTable(map[uint64]scsi.LogicalUnit{0: dev})}); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		srv.Close()
		<-done
	})
	return ln.Addr().String()
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

// benchWrites runs b.N 4 KiB writes with qd outstanding: this goroutine
// sends commands as slots free up, another receives responses and
// answers R2Ts.
func benchWrites(b *testing.B, r *rawInit, qd int) {
	const size = 4096
	const span = 64 << 20 / size // 4 KiB blocks on the LUN
	// One PDU image per slot: the command (with immediate data when
	// negotiated) and, for R2Ts, the Data-Out.
	type slot struct {
		cmd, dataOut []byte
	}
	hdr := bhsLen
	if r.d.header || r.d.data {
		b.Fatal("benchmark runs without digests")
	}
	slots := make([]slot, qd)
	cmdSN := r.cmdSN
	for i := range slots {
		imm := 0
		if r.imm {
			imm = size
		}
		cmd := r.command(0, false, true, true, size, cdb10(0x2a, 0, size/512))
		putU24(cmd[5:8], uint32(imm))
		slots[i].cmd = append(append(make([]byte, 0, hdr+imm), cmd[:]...), make([]byte, imm)...)
		do := r.dataOut(0, 0, 0, 0, nil, true)
		putU24(do[5:8], size)
		slots[i].dataOut = append(append(make([]byte, 0, hdr+size), do[:]...), make([]byte, size)...)
	}
	r.cmdSN = cmdSN // command() above consumed CmdSNs the slots did not use
	free := make(chan int, qd)
	for i := range qd {
		free <- i
	}
	// ITTs are slot numbers offset past those rawInit used.
	const ittBase = 1 << 20
	errc := make(chan error, 1)
	b.ReportAllocs()
	b.SetBytes(size)
	rBefore, wBefore := syscallCounts()
	b.ResetTimer()
	go func() {
		errc <- receiveWrites(r.c, r.br, b.N, func(itt uint32) { free <- int(itt - ittBase) }, func(itt, ttt, off, n uint32) error {
			d := slots[itt-ittBase].dataOut
			put32(d[16:20], itt)
			put32(d[20:24], ttt)
			put32(d[40:44], off)
			_, err := r.c.Write(d)
			return err
		})
	}()
	for i := range b.N {
		s := <-free
		c := slots[s].cmd
		put32(c[16:20], uint32(ittBase+s))
		put32(c[24:28], r.cmdSN)
		r.cmdSN++
		put32(c[32+2:32+6], uint32(i%span)*(size/512))
		if _, err := r.c.Write(c); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	rAfter, wAfter := syscallCounts()
	// Both ends are in this process: the initiator makes one write per
	// PDU it sends and reads in bufio.Reader-sized gulps.
	b.ReportMetric(float64(rAfter-rBefore)/float64(b.N), "readcalls/op")
	b.ReportMetric(float64(wAfter-wBefore)/float64(b.N), "writecalls/op")
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

// receiveWrites reads n SCSI Responses, each reported by done, and
// answers each R2T with answer.
func receiveWrites(c net.Conn, br *bufio.Reader, n int, done func(itt uint32), answer func(itt, ttt, off, n uint32) error) error {
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
			if err := answer(h.itt(), h.ttt(), h.bufferOffset(), be32(h.bhs[44:48])); err != nil {
				return err
			}
		case opNopIn:
		default:
			return fmt.Errorf("unexpected opcode %#x", h.opcode())
		}
	}
	return nil
}
