package iscsi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	mrand "math/rand"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/scsi"
)

// rawInit is a minimal iSCSI initiator written from RFC 7143 for tests
// that need what libiscsi and qemu never send: data digests, several
// outstanding R2Ts, tiny bursts and segments, InitialR2T=Yes, malformed
// or out-of-order PDUs, text continuation.
type rawInit struct {
	t      testing.TB
	c      net.Conn
	br     *bufio.Reader
	d      digests
	cmdSN  uint32
	itt    uint32
	keys   map[string]string // the target's login answers
	mrdsl  uint32            // target's MaxRecvDataSegmentLength
	burst  uint32
	first  uint32
	r2tMax uint32
	imm    bool
	initR2 bool
}

type rawPDU struct {
	h    header
	data []byte
}

// dialRaw logs in with the given operational keys (name=value pairs)
// and a random ISID.
func dialRaw(t testing.TB, addr, target string, kv ...string) *rawInit {
	t.Helper()
	var isid [6]byte
	rand.Read(isid[1:])
	isid[0] = 0x40 // random qualifier type (RFC 7143 11.12.5)
	return dialRawISID(t, addr, target, isid, kv...)
}

func dialRawISID(t testing.TB, addr, target string, isid [6]byte, kv ...string) *rawInit {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	r := &rawInit{t: t, c: c, br: bufio.NewReader(c), itt: 1, cmdSN: 1, keys: map[string]string{}}
	var text []byte
	text = appendText(text, "InitiatorName", "iqn.2026-01.test:raw")
	if target == "" {
		text = appendText(text, "SessionType", "Discovery")
	} else {
		text = appendText(text, "TargetName", target)
		text = appendText(text, "SessionType", "Normal")
	}
	text = appendText(text, "AuthMethod", "None")
	// Security stage with transit to operational, then operational to FFP.
	var b [bhsLen]byte
	b[0] = opLoginReq | flagImmediate
	b[1] = flagTransit | stageSecurity<<2 | stageOperational
	copy(b[8:14], isid[:])
	put32(b[16:20], r.nextITT())
	put32(b[24:28], r.cmdSN)
	r.send(b, text)
	p := r.recv()
	if p.h.opcode() != opLoginResp || p.h.bhs[36] != 0 {
		t.Fatalf("security stage: opcode %#x status %#x", p.h.opcode(), p.h.bhs[36:38])
	}
	text = nil
	for i := 0; i+1 < len(kv); i += 2 {
		text = appendText(text, kv[i], kv[i+1])
	}
	b[1] = flagTransit | stageOperational<<2 | stageFullFeature
	put32(b[16:20], r.nextITT())
	r.send(b, text)
	p = r.recv()
	if p.h.opcode() != opLoginResp || p.h.bhs[36] != 0 || p.h.flags()&flagTransit == 0 {
		t.Fatalf("operational stage: opcode %#x status %#x flags %#x", p.h.opcode(), p.h.bhs[36:38], p.h.flags())
	}
	pairs, err := parseText(p.data)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		r.keys[p.key] = p.value
	}
	num := func(k string, def uint32) uint32 {
		if v, ok := r.keys[k]; ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				t.Fatalf("%s=%s", k, v)
			}
			return uint32(n)
		}
		return def
	}
	r.mrdsl = num("MaxRecvDataSegmentLength", 8192)
	r.burst = num("MaxBurstLength", 262144)
	r.first = num("FirstBurstLength", 65536)
	r.r2tMax = num("MaxOutstandingR2T", 1)
	r.imm = r.keys["ImmediateData"] != "No"
	r.initR2 = r.keys["InitialR2T"] != "No"
	r.d.header = r.keys["HeaderDigest"] == "CRC32C"
	r.d.data = r.keys["DataDigest"] == "CRC32C"
	if target != "" {
		// The first command of a new nexus reports POWER ON OCCURRED;
		// take that unit attention out of the way.
		for i := 0; ; i++ {
			b := r.command(r.nextITT(), false, false, true, 0, make([]byte, 6))
			r.send(b, nil)
			p := r.recv()
			if p.h.opcode() != opSCSIResp {
				t.Fatalf("TEST UNIT READY: opcode %#x", p.h.opcode())
			}
			if p.h.bhs[3] == 0 {
				break
			}
			if i == 3 {
				t.Fatalf("TEST UNIT READY keeps failing: %x", p.data)
			}
		}
	}
	return r
}

func (r *rawInit) nextITT() uint32 { r.itt++; return r.itt }

func (r *rawInit) send(b [bhsLen]byte, data []byte) {
	r.sendRaw(b, data, false)
}

// sendRaw writes one PDU; corrupt flips a bit of the data digest.
func (r *rawInit) sendRaw(b [bhsLen]byte, data []byte, corrupt bool) {
	r.t.Helper()
	putU24(b[5:8], uint32(len(data)))
	var w bytes.Buffer
	w.Write(b[:])
	if r.d.header {
		binary.Write(&w, binary.LittleEndian, crc32.Checksum(b[:], castagnoli))
	}
	if len(data) > 0 {
		w.Write(data)
		pad := make([]byte, padLen(len(data)))
		w.Write(pad)
		if r.d.data {
			crc := crc32.Update(crc32.Checksum(data, castagnoli), castagnoli, pad)
			if corrupt {
				crc ^= 1
			}
			binary.Write(&w, binary.LittleEndian, crc)
		}
	}
	if _, err := r.c.Write(w.Bytes()); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawInit) recv() rawPDU {
	r.t.Helper()
	var p rawPDU
	if err := readHeader(r.br, &p.h, r.d); err != nil {
		r.t.Fatalf("receive: %v", err)
	}
	p.data = make([]byte, p.h.dataLen())
	if err := readData(r.br, p.data, r.d); err != nil {
		r.t.Fatalf("receive data: %v", err)
	}
	return p
}

func cdb10(op byte, lba uint32, blocks uint16) []byte {
	c := make([]byte, 10)
	c[0] = op
	put32(c[2:6], lba)
	put16(c[7:9], blocks)
	return c
}

// command builds a SCSI Command BHS.
func (r *rawInit) command(itt uint32, read, write, final bool, edtl uint32, cdb []byte) [bhsLen]byte {
	var b [bhsLen]byte
	b[0] = opSCSICmd
	b[1] = 1 // SIMPLE
	if final {
		b[1] |= flagFinal
	}
	if read {
		b[1] |= flagRead
	}
	if write {
		b[1] |= flagWrite
	}
	put32(b[16:20], itt)
	put32(b[20:24], edtl)
	put32(b[24:28], r.cmdSN)
	r.cmdSN++
	copy(b[32:48], cdb)
	return b
}

func (r *rawInit) dataOut(itt, ttt, dataSN, off uint32, data []byte, final bool) [bhsLen]byte {
	var b [bhsLen]byte
	b[0] = opDataOut
	if final {
		b[1] = flagFinal
	}
	put32(b[16:20], itt)
	put32(b[20:24], ttt)
	put32(b[36:40], dataSN)
	put32(b[40:44], off)
	return b
}

// sendData sends data[off:off+n] as a sequence of Data-Out PDUs.
func (r *rawInit) sendData(itt, ttt uint32, data []byte, off, n uint32) {
	var sn uint32
	end := off + n
	for off < end {
		k := min(r.mrdsl, end-off)
		b := r.dataOut(itt, ttt, sn, off, nil, off+k == end)
		r.send(b, data[off:off+k])
		sn++
		off += k
	}
}

// write performs a WRITE(10) the way the negotiated keys allow: immediate
// data, unsolicited Data-Out, then whatever R2Ts the target sends, answered
// in reverse order when several are outstanding.
func (r *rawInit) write(lba uint32, data []byte) (status byte, resp rawPDU) {
	r.t.Helper()
	itt := r.nextITT()
	edtl := uint32(len(data))
	var imm uint32
	if r.imm {
		imm = min(edtl, r.first, r.mrdsl)
	}
	unsolEnd := imm
	if !r.initR2 {
		unsolEnd = min(edtl, r.first)
	}
	b := r.command(itt, false, true, unsolEnd == imm, edtl, cdb10(0x2a, lba, uint16(edtl/512)))
	r.send(b, data[:imm])
	if unsolEnd > imm {
		r.sendData(itt, reservedTag, data, imm, unsolEnd-imm)
	}
	var pending [][3]uint32
	for {
		p := r.recv()
		switch p.h.opcode() {
		case opR2T:
			if p.h.itt() != itt {
				r.t.Fatalf("R2T for ITT %#x, want %#x", p.h.itt(), itt)
			}
			pending = append(pending, [3]uint32{p.h.ttt(), be32(p.h.bhs[40:44]), be32(p.h.bhs[44:48])})
			if len(pending) > int(r.r2tMax) {
				r.t.Fatalf("%d R2Ts outstanding, MaxOutstandingR2T=%d", len(pending), r.r2tMax)
			}
			if be32(p.h.bhs[44:48]) > r.burst {
				r.t.Fatalf("R2T asks for %d bytes, MaxBurstLength=%d", be32(p.h.bhs[44:48]), r.burst)
			}
			// Answer only when the target has sent all it may, so several
			// sequences are open at once when MaxOutstandingR2T > 1.
			if len(pending) == int(r.r2tMax) || be32(p.h.bhs[40:44])+be32(p.h.bhs[44:48]) == edtl {
				for i := len(pending) - 1; i >= 0; i-- {
					q := pending[i]
					r.sendData(itt, q[0], data, q[1], q[2])
				}
				pending = pending[:0]
			}
		case opSCSIResp:
			return p.h.bhs[3], p
		default:
			r.t.Fatalf("unexpected opcode %#x during write", p.h.opcode())
		}
	}
}

// read performs a READ(10) and checks the Data-In train.
func (r *rawInit) read(lba uint32, n uint32, ourMRDSL uint32) []byte {
	r.t.Helper()
	itt := r.nextITT()
	b := r.command(itt, true, false, true, n, cdb10(0x28, lba, uint16(n/512)))
	r.send(b, nil)
	var out []byte
	var sn, inBurst uint32
	for {
		p := r.recv()
		switch p.h.opcode() {
		case opDataIn:
			if p.h.dataSN() != sn || p.h.bufferOffset() != uint32(len(out)) {
				r.t.Fatalf("Data-In DataSN %d offset %d, want %d and %d", p.h.dataSN(), p.h.bufferOffset(), sn, len(out))
			}
			if uint32(len(p.data)) > ourMRDSL {
				r.t.Fatalf("Data-In of %d bytes, our MaxRecvDataSegmentLength is %d", len(p.data), ourMRDSL)
			}
			inBurst += uint32(len(p.data))
			if inBurst > r.burst {
				r.t.Fatalf("Data-In burst of %d bytes exceeds MaxBurstLength %d", inBurst, r.burst)
			}
			if p.h.final() {
				inBurst = 0
			}
			sn++
			out = append(out, p.data...)
			if p.h.flags()&flagStatus != 0 {
				if p.h.bhs[3] != 0 {
					r.t.Fatalf("read status %#x", p.h.bhs[3])
				}
				return out
			}
		case opSCSIResp:
			if p.h.bhs[3] != 0 {
				r.t.Fatalf("read status %#x, sense %x", p.h.bhs[3], p.data)
			}
			if be32(p.h.bhs[36:40]) != sn {
				r.t.Fatalf("ExpDataSN %d, %d Data-In sent", be32(p.h.bhs[36:40]), sn)
			}
			return out
		default:
			r.t.Fatalf("unexpected opcode %#x during read", p.h.opcode())
		}
	}
}

// scsiIn sends a command that reads at most edtl bytes and returns its
// Data-In; the command must end with GOOD status.
func (r *rawInit) scsiIn(cdb []byte, edtl uint32) []byte {
	r.t.Helper()
	itt := r.nextITT()
	r.send(r.command(itt, true, false, true, edtl, cdb), nil)
	var out []byte
	for {
		p := r.recv()
		switch p.h.opcode() {
		case opDataIn:
			out = append(out, p.data...)
			if p.h.flags()&flagStatus != 0 {
				if p.h.bhs[3] != 0 {
					r.t.Fatalf("CDB % x: status %#x", cdb, p.h.bhs[3])
				}
				return out
			}
		case opSCSIResp:
			if p.h.bhs[3] != 0 {
				r.t.Fatalf("CDB % x: status %#x, sense %x", cdb, p.h.bhs[3], p.data)
			}
			return out
		default:
			r.t.Fatalf("unexpected opcode %#x for CDB % x", p.h.opcode(), cdb)
		}
	}
}

func (r *rawInit) nop(itt uint32, ping []byte) rawPDU {
	var b [bhsLen]byte
	b[0] = opNopOut | flagImmediate
	b[1] = flagFinal
	put32(b[16:20], itt)
	put32(b[20:24], reservedTag)
	put32(b[24:28], r.cmdSN)
	r.send(b, ping)
	return r.recv()
}

// TestRawDataPaths writes and reads back through every combination of the
// negotiation keys that shape the data path.
func TestRawDataPaths(t *testing.T) {
	tt := startTarget(t, 8<<20, nil)
	cases := [][]string{
		{"HeaderDigest", "CRC32C", "DataDigest", "CRC32C"},
		{"InitialR2T", "Yes", "ImmediateData", "No", "MaxBurstLength", "4096", "MaxOutstandingR2T", "4", "MaxRecvDataSegmentLength", "512"},
		{"InitialR2T", "No", "ImmediateData", "Yes", "FirstBurstLength", "8192", "MaxBurstLength", "16384", "MaxOutstandingR2T", "3", "MaxRecvDataSegmentLength", "1024", "DataDigest", "CRC32C"},
		{"InitialR2T", "Yes", "ImmediateData", "Yes", "FirstBurstLength", "512", "MaxBurstLength", "512", "MaxRecvDataSegmentLength", "4096", "HeaderDigest", "CRC32C"},
		{"InitialR2T", "No", "ImmediateData", "No", "FirstBurstLength", "262144", "MaxBurstLength", "1048576", "MaxRecvDataSegmentLength", "262144"},
	}
	for i, kv := range cases {
		t.Run(strings.Join(kv, ","), func(t *testing.T) {
			r := dialRaw(t, tt.addr, testIQN, kv...)
			ourMRDSL := uint32(8192)
			for j := 0; j+1 < len(kv); j += 2 {
				if kv[j] == "MaxRecvDataSegmentLength" {
					n, _ := strconv.Atoi(kv[j+1])
					ourMRDSL = uint32(n)
				}
			}
			for _, size := range []int{512, 4096, 65536 + 512, 300 << 10} {
				data := make([]byte, size)
				rand.Read(data)
				lba := uint32(i * 2048)
				status, resp := r.write(lba, data)
				if status != 0 {
					t.Fatalf("write %d bytes: status %#x sense %x", size, status, resp.data)
				}
				got := r.read(lba, uint32(size), ourMRDSL)
				if !bytes.Equal(got, data) {
					t.Fatalf("%d bytes read back differ (got %d bytes)", size, len(got))
				}
			}
		})
	}
}

// TestRawDataDigestError corrupts one Data-Out digest: the target rejects
// that PDU, fails only that command, and the session goes on.
func TestRawDataDigestError(t *testing.T) {
	tt := startTarget(t, 1<<20, nil)
	r := dialRaw(t, tt.addr, testIQN, "DataDigest", "CRC32C", "HeaderDigest", "CRC32C", "InitialR2T", "No", "ImmediateData", "No")
	itt := r.nextITT()
	data := bytes.Repeat([]byte{0x5a}, 1024)
	b := r.command(itt, false, true, false, 1024, cdb10(0x2a, 0, 2))
	r.send(b, nil)
	r.sendRaw(r.dataOut(itt, reservedTag, 0, 0, nil, true), data, true)
	var sawReject, sawCheck bool
	for !sawCheck {
		p := r.recv()
		switch p.h.opcode() {
		case opReject:
			sawReject = p.h.bhs[2] == rejectDataDigest
		case opSCSIResp:
			sawCheck = p.h.bhs[3] == 0x02 && p.h.itt() == itt
			if !sawCheck {
				t.Fatalf("response status %#x", p.h.bhs[3])
			}
		default:
			t.Fatalf("unexpected opcode %#x", p.h.opcode())
		}
	}
	if !sawReject {
		t.Errorf("no Reject (data digest error) before the failed command's response")
	}
	ping := []byte("still alive")
	p := r.nop(r.nextITT(), ping)
	if p.h.opcode() != opNopIn || !bytes.Equal(p.data, ping) {
		t.Fatalf("NOP-In %#x %q", p.h.opcode(), p.data)
	}
	if status, _ := r.write(0, data); status != 0 {
		t.Fatalf("write after digest error: status %#x", status)
	}
}

// TestRawAbortGathering aborts a write that is waiting for its R2T data:
// the target answers Function Complete, never answers the write, and
// ignores the late Data-Out.
func TestRawAbortGathering(t *testing.T) {
	tt := startTarget(t, 1<<20, nil)
	r := dialRaw(t, tt.addr, testIQN, "InitialR2T", "Yes", "ImmediateData", "No")
	itt := r.nextITT()
	cmdSN := r.cmdSN
	b := r.command(itt, false, true, true, 4096, cdb10(0x2a, 8, 8))
	r.send(b, nil)
	p := r.recv()
	if p.h.opcode() != opR2T {
		t.Fatalf("opcode %#x, want R2T", p.h.opcode())
	}
	ttt := p.h.ttt()
	var tmf [bhsLen]byte
	tmf[0] = opTMFReq | flagImmediate
	tmf[1] = flagFinal | tmfAbortTask
	tmfITT := r.nextITT()
	put32(tmf[16:20], tmfITT)
	put32(tmf[20:24], itt)
	put32(tmf[24:28], r.cmdSN)
	put32(tmf[32:36], cmdSN)
	r.send(tmf, nil)
	p = r.recv()
	if p.h.opcode() != opTMFResp || p.h.bhs[2] != tmfComplete || p.h.itt() != tmfITT {
		t.Fatalf("TMF response opcode %#x response %d", p.h.opcode(), p.h.bhs[2])
	}
	// Late data for the aborted task is dropped silently.
	r.sendData(itt, ttt, make([]byte, 4096), 0, 4096)
	// Aborting it again finds nothing.
	put32(tmf[16:20], r.nextITT())
	r.send(tmf, nil)
	p = r.recv()
	if p.h.opcode() != opTMFResp || p.h.bhs[2] != tmfNoTask {
		t.Fatalf("second abort: opcode %#x response %d", p.h.opcode(), p.h.bhs[2])
	}
	p = r.nop(r.nextITT(), nil)
	if p.h.opcode() != opNopIn {
		t.Fatalf("opcode %#x after abort, want only the NOP-In", p.h.opcode())
	}
}

// TestRawRejectsAndWindow checks an unknown opcode is rejected, that
// MaxCmdSN opens a window, and that a command outside it is ignored.
func TestRawRejectsAndWindow(t *testing.T) {
	tt := startTarget(t, 1<<20, nil)
	r := dialRaw(t, tt.addr, testIQN)
	var b [bhsLen]byte
	b[0] = 0x1c | flagImmediate // not an initiator opcode
	b[1] = flagFinal
	put32(b[16:20], r.nextITT())
	r.send(b, []byte("junk"))
	p := r.recv()
	if p.h.opcode() != opReject || p.h.bhs[2] != rejectNotSupported || !bytes.Equal(p.data[:1], b[:1]) {
		t.Fatalf("opcode %#x reason %#x", p.h.opcode(), p.h.bhs[2])
	}
	exp, maxSN := be32(p.h.bhs[28:32]), be32(p.h.bhs[32:36])
	if maxSN-exp+1 != 128 {
		t.Errorf("idle command window %d, want 128", maxSN-exp+1)
	}
	// TEST UNIT READY with CmdSN beyond MaxCmdSN: ignored.
	saved := r.cmdSN
	r.cmdSN = maxSN + 1
	tur := r.command(r.nextITT(), false, false, true, 0, make([]byte, 6))
	r.send(tur, nil)
	r.cmdSN = saved
	tur = r.command(r.nextITT(), false, false, true, 0, make([]byte, 6))
	r.send(tur, nil)
	p = r.recv()
	if p.h.opcode() != opSCSIResp || p.h.itt() != be32(tur[16:20]) {
		t.Fatalf("opcode %#x ITT %#x: want the in-window command's response only", p.h.opcode(), p.h.itt())
	}
}

// TestRawSendTargetsContinuation lists more targets than fit in one PDU
// of the initiator's MaxRecvDataSegmentLength: the reply comes in pieces.
func TestRawSendTargetsContinuation(t *testing.T) {
	tt := startTarget(t, 1<<20, nil)
	var want []string
	for i := range 40 {
		iqn := fmt.Sprintf("iqn.1997-05.com.amazon:vol-%02d-%s", i, strings.Repeat("x", 30))
		tgt, _, _ := tt.srv.lookupTarget(testIQN)
		dev := tgt.lu
		if err := tt.srv.AddTarget(TargetConfig{IQN: iqn, LUNs: dev}); err != nil {
			t.Fatal(err)
		}
		want = append(want, iqn)
	}
	want = append(want, testIQN)
	r := dialRaw(t, tt.addr, "", "MaxRecvDataSegmentLength", "512")
	itt := r.nextITT()
	var b [bhsLen]byte
	b[0] = opTextReq | flagImmediate
	b[1] = flagFinal
	put32(b[16:20], itt)
	put32(b[20:24], reservedTag)
	put32(b[24:28], r.cmdSN)
	r.send(b, appendText(nil, "SendTargets", "All"))
	var all []byte
	pieces := 0
	for {
		p := r.recv()
		if p.h.opcode() != opTextResp || p.h.itt() != itt || len(p.data) > 512 {
			t.Fatalf("opcode %#x itt %#x len %d", p.h.opcode(), p.h.itt(), len(p.data))
		}
		all = append(all, p.data...)
		pieces++
		if p.h.final() {
			break
		}
		put32(b[20:24], p.h.ttt())
		r.send(b, nil)
	}
	if pieces < 2 {
		t.Errorf("reply came in %d piece(s)", pieces)
	}
	// SendTargets repeats keys, so split by hand.
	var got []string
	for _, item := range strings.Split(strings.TrimRight(string(all), "\x00"), "\x00") {
		k, v, _ := strings.Cut(item, "=")
		if k == "TargetName" {
			got = append(got, v)
		} else if k != "TargetAddress" || v != tt.addr+",1" {
			t.Errorf("unexpected %s=%s", k, v)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d targets listed, want %d", len(got), len(want))
	}
}

// loginOnce sends one Login Request and returns the response.
func loginOnce(t *testing.T, addr string, isid byte, csg, nsg byte, text []byte) (rawPDU, *rawInit) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := &rawInit{t: t, c: c, br: bufio.NewReader(c), itt: 1, cmdSN: 1}
	var b [bhsLen]byte
	b[0] = opLoginReq | flagImmediate
	b[1] = flagTransit | csg<<2 | nsg
	copy(b[8:14], []byte{0x40, 0, 0, 0, 0, isid})
	put32(b[16:20], 7)
	put32(b[24:28], 1)
	r.send(b, text)
	return r.recv(), r
}

func loginStatus(p rawPDU) uint16 { return uint16(p.h.bhs[36])<<8 | uint16(p.h.bhs[37]) }

// TestRawLoginRefusals checks the status of logins that must fail, and
// that a login straight into the operational stage works.
func TestRawLoginRefusals(t *testing.T) {
	tt := startTarget(t, 1<<20, []CHAPCredential{{InitiatorName: "iqn.x", SecretToAuthenticateInitiator: "0123456789ab"}})
	if err := tt.srv.AddTarget(TargetConfig{IQN: testIQN + "-open", LUNs: mustLU(t, tt)}); err != nil {
		t.Fatal(err)
	}
	kv := func(pairs ...string) []byte {
		var b []byte
		for i := 0; i+1 < len(pairs); i += 2 {
			b = appendText(b, pairs[i], pairs[i+1])
		}
		return b
	}
	cases := []struct {
		name     string
		csg, nsg byte
		text     []byte
		status   uint16
	}{
		{"unknown target", 0, 1, kv("InitiatorName", "iqn.x", "TargetName", testIQN+"-nope", "AuthMethod", "None"), loginNotFound},
		{"no initiator name", 0, 1, kv("TargetName", testIQN, "AuthMethod", "None"), loginMissingParam},
		{"no target name", 0, 1, kv("InitiatorName", "iqn.x", "AuthMethod", "None"), loginMissingParam},
		{"CHAP target without CHAP", 0, 1, kv("InitiatorName", "iqn.x", "TargetName", testIQN, "AuthMethod", "None"), loginAuthFailed},
		{"CHAP target skipping security", 1, 3, kv("InitiatorName", "iqn.x", "TargetName", testIQN), loginAuthFailed},
		{"malformed text", 1, 3, []byte("InitiatorName\x00"), loginInitiatorError},
		{"bad transition", 1, 1, kv("InitiatorName", "iqn.x", "TargetName", testIQN+"-open"), loginInitiatorError},
		{"open target straight to operational", 1, 3, kv("InitiatorName", "iqn.x", "TargetName", testIQN+"-open"), loginSuccess},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, _ := loginOnce(t, tt.addr, byte(i), c.csg, c.nsg, c.text)
			if p.h.opcode() != opLoginResp || loginStatus(p) != c.status {
				t.Fatalf("opcode %#x status %#04x, want %#04x", p.h.opcode(), loginStatus(p), c.status)
			}
			if c.status == loginSuccess && be16(p.h.bhs[14:16]) == 0 {
				t.Fatalf("no TSIH in the final login response")
			}
		})
	}
}

func mustLU(t *testing.T, tt *testTarget) scsi.LogicalUnit {
	tgt, _, ok := tt.srv.lookupTarget(testIQN)
	if !ok {
		t.Fatal("test target missing")
	}
	return tgt.lu
}

// TestRawReinstatement logs in twice with the same ISID: the second login
// reinstates the session, closing the first connection.
func TestRawReinstatement(t *testing.T) {
	tt := startTarget(t, 1<<20, nil)
	isid := [6]byte{0x40, 1, 2, 3, 4, 5}
	first := dialRawISID(t, tt.addr, testIQN, isid)
	other := dialRawISID(t, tt.addr, testIQN, [6]byte{0x40, 1, 2, 3, 4, 6})
	second := dialRawISID(t, tt.addr, testIQN, isid)
	if p := other.nop(other.nextITT(), []byte("y")); p.h.opcode() != opNopIn {
		t.Fatalf("session with another ISID was closed: opcode %#x", p.h.opcode())
	}
	if p := second.nop(second.nextITT(), []byte("x")); p.h.opcode() != opNopIn {
		t.Fatalf("new session: opcode %#x", p.h.opcode())
	}
	var b [bhsLen]byte
	if _, err := first.br.Read(b[:]); err == nil {
		t.Fatalf("old session still open after reinstatement")
	}
}

// TestRawLUNReset resets LUN 0 (Function Complete) and an absent LUN
// (LUN does not exist).
func TestRawLUNReset(t *testing.T) {
	tt := startTarget(t, 1<<20, nil)
	r := dialRaw(t, tt.addr, testIQN)
	for _, c := range []struct {
		lun  byte
		want byte
	}{{0, tmfComplete}, {5, tmfNoLUN}} {
		var tmf [bhsLen]byte
		tmf[0] = opTMFReq | flagImmediate
		tmf[1] = flagFinal | tmfLogicalUnitReset
		tmf[9] = c.lun
		put32(tmf[16:20], r.nextITT())
		put32(tmf[20:24], reservedTag)
		put32(tmf[24:28], r.cmdSN)
		r.send(tmf, nil)
		p := r.recv()
		if p.h.opcode() != opTMFResp || p.h.bhs[2] != c.want {
			t.Fatalf("LUN %d reset: opcode %#x response %d, want %d", c.lun, p.h.opcode(), p.h.bhs[2], c.want)
		}
	}
}

// TestRawCHAPAlgorithms logs in with each CHAP digest the target offers,
// mutually, checking the target's answer to our challenge.
func TestRawCHAPAlgorithms(t *testing.T) {
	cred := CHAPCredential{InitiatorName: "iqn.2026-01.test:raw", SecretToAuthenticateInitiator: "initiator-secret-1", SecretToAuthenticateTarget: "target-secret-12"}
	tt := startTarget(t, 1<<20, []CHAPCredential{cred})
	for i, alg := range chapAlgorithms {
		t.Run("CHAP_A="+alg.id, func(t *testing.T) {
			kv := func(pairs ...string) []byte {
				var b []byte
				for i := 0; i+1 < len(pairs); i += 2 {
					b = appendText(b, pairs[i], pairs[i+1])
				}
				return b
			}
			p, r := loginOnce(t, tt.addr, byte(i), stageSecurity, stageOperational,
				kv("InitiatorName", cred.InitiatorName, "TargetName", testIQN, "AuthMethod", "CHAP,None"))
			step := func(text []byte, transit bool) rawPDU {
				var b [bhsLen]byte
				b[0] = opLoginReq | flagImmediate
				b[1] = stageSecurity<<2 | stageOperational
				if transit {
					b[1] |= flagTransit
				}
				copy(b[8:14], []byte{0x40, 0, 0, 0, 0, byte(i)})
				put32(b[16:20], 7)
				put32(b[24:28], 1)
				r.send(b, text)
				return r.recv()
			}
			answers := func(p rawPDU) map[string]string {
				m := map[string]string{}
				pairs, err := parseText(p.data)
				if err != nil || loginStatus(p) != 0 {
					t.Fatalf("status %#04x, text %q: %v", loginStatus(p), p.data, err)
				}
				for _, kv := range pairs {
					m[kv.key] = kv.value
				}
				return m
			}
			if a := answers(p); a["AuthMethod"] != "CHAP" {
				t.Fatalf("AuthMethod=%q", a["AuthMethod"])
			}
			a := answers(step(kv("CHAP_A", alg.id), false))
			if a["CHAP_A"] != alg.id {
				t.Fatalf("CHAP_A=%q, offered %s", a["CHAP_A"], alg.id)
			}
			id, _ := parseCHAPID(a["CHAP_I"])
			challenge := decodeBinary(a["CHAP_C"])
			resp := alg.respond(id, cred.SecretToAuthenticateInitiator, challenge)
			ours := bytes.Repeat([]byte{0x42}, 16)
			a = answers(step(kv("CHAP_N", cred.InitiatorName, "CHAP_R", encodeHex(resp), "CHAP_I", "9", "CHAP_C", encodeHex(ours)), true))
			want := alg.respond(9, cred.SecretToAuthenticateTarget, ours)
			if !bytes.Equal(decodeBinary(a["CHAP_R"]), want) || a["CHAP_N"] != testIQN {
				t.Fatalf("target answered CHAP_N=%q CHAP_R=%q", a["CHAP_N"], a["CHAP_R"])
			}
		})
	}
}

// TestServerAPI covers the management calls: duplicate and invalid
// targets, SetCHAP applying to later logins, RemoveTarget closing live
// sessions, and Serve after Close.
func TestServerAPI(t *testing.T) {
	tt := startTarget(t, 1<<20, nil)
	lu := mustLU(t, tt)
	if err := tt.srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: lu}); !errorsIs(err, ErrTargetExists) {
		t.Errorf("duplicate AddTarget: %v", err)
	}
	for _, bad := range []string{"", "vol-1", "iqn.with space", "iqn." + strings.Repeat("x", 230)} {
		if err := tt.srv.AddTarget(TargetConfig{IQN: bad, LUNs: lu}); !errorsIs(err, ErrBadTarget) {
			t.Errorf("AddTarget(%q): %v", bad, err)
		}
	}
	if err := tt.srv.AddTarget(TargetConfig{IQN: testIQN + "-nolu"}); !errorsIs(err, ErrBadTarget) {
		t.Errorf("AddTarget without LUNs: %v", err)
	}
	if err := tt.srv.RemoveTarget(testIQN + "-nope"); !errorsIs(err, ErrTargetNotFound) {
		t.Errorf("RemoveTarget of unknown target: %v", err)
	}
	if err := tt.srv.SetCHAP(testIQN+"-nope", nil); !errorsIs(err, ErrTargetNotFound) {
		t.Errorf("SetCHAP of unknown target: %v", err)
	}

	// A live session, then the same (empty) CHAP list again: nothing
	// changes, the session stays.
	r := dialRaw(t, tt.addr, testIQN)
	if err := tt.srv.SetCHAP(testIQN, nil); err != nil {
		t.Fatal(err)
	}
	if p := r.nop(r.nextITT(), []byte("a")); p.h.opcode() != opNopIn {
		t.Fatalf("session after an unchanged SetCHAP: opcode %#x", p.h.opcode())
	}
	// CHAP turned on: the session authenticated without it is closed (as
	// AWS closes a target's connections on UpdateChapCredentials), and
	// new plain logins are refused.
	if err := tt.srv.SetCHAP(testIQN, []CHAPCredential{{InitiatorName: "iqn.x", SecretToAuthenticateInitiator: "0123456789ab"}}); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := r.br.Read(b[:]); err == nil {
		t.Errorf("session still open after its CHAP changed")
	}
	var text []byte
	text = appendText(text, "InitiatorName", "iqn.x")
	text = appendText(text, "TargetName", testIQN)
	text = appendText(text, "AuthMethod", "None")
	if p, _ := loginOnce(t, tt.addr, 9, stageSecurity, stageOperational, text); loginStatus(p) != loginAuthFailed {
		t.Errorf("plain login after SetCHAP: status %#04x", loginStatus(p))
	}
	if err := tt.srv.SetCHAP(testIQN, nil); err != nil {
		t.Fatal(err)
	}

	// RemoveTarget keeps a live session but takes its logical units away:
	// every command fails with LOGICAL UNIT NOT SUPPORTED, INQUIRY says no
	// device, REPORT LUNS lists none; new logins are told the target was
	// removed, and ListVolumeInitiators no longer counts the session.
	r = dialRaw(t, tt.addr, testIQN)
	if status, resp := r.write(0, make([]byte, 512)); status != 0 {
		t.Fatalf("write before RemoveTarget: status %#x sense %x", status, resp.data)
	}
	if err := tt.srv.RemoveTarget(testIQN); err != nil {
		t.Fatal(err)
	}
	if got := tt.srv.Initiators(testIQN); len(got) != 0 {
		t.Errorf("Initiators after RemoveTarget = %q", got)
	}
	status, resp := r.write(0, make([]byte, 512))
	if status != 0x02 || !bytes.Contains(resp.data, []byte{0x70, 0, 0x05}) || resp.data[2+12] != 0x25 {
		t.Errorf("write after RemoveTarget: status %#x sense %x, want CHECK CONDITION, ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED", status, resp.data)
	}
	inq := r.scsiIn([]byte{0x12, 0, 0, 0, 36, 0}, 36)
	if len(inq) < 1 || inq[0] != 0x7f {
		t.Errorf("INQUIRY after RemoveTarget: % x, want peripheral qualifier 011b, type 1Fh", inq)
	}
	if p := r.nop(r.nextITT(), []byte("b")); p.h.opcode() != opNopIn {
		t.Errorf("session after RemoveTarget: opcode %#x", p.h.opcode())
	}
	if p, _ := loginOnce(t, tt.addr, 10, stageSecurity, stageOperational, text); loginStatus(p) != loginTargetRemoved {
		t.Errorf("login to removed target: status %#04x, want 0204h", loginStatus(p))
	}
	// Added back, the name is served again, and the session withdrawn
	// from it is closed so that its initiator logs in again.
	if err := tt.srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: lu}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.br.Read(b[:]); err == nil {
		t.Errorf("withdrawn session still open after its target name was added back")
	}
	if p, _ := loginOnce(t, tt.addr, 11, stageSecurity, stageOperational, text); loginStatus(p) != 0 {
		t.Errorf("login to the target added back: status %#04x", loginStatus(p))
	}
	if err := tt.srv.RemoveTarget(testIQN); err != nil {
		t.Fatal(err)
	}

	tt.srv.Close()
	if err := tt.srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := tt.srv.Serve(t.Context(), ln); !errorsIs(err, ErrServerClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
	if err := tt.srv.AddTarget(TargetConfig{IQN: testIQN + "-late", LUNs: lu}); !errorsIs(err, ErrServerClosed) {
		t.Errorf("AddTarget after Close: %v", err)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// TestRawSessionBuffer bounds a session's buffered Data-Out: a write that
// would exceed the budget is answered TASK SET FULL without taking data,
// and one within it succeeds.
func TestRawSessionBuffer(t *testing.T) {
	tt := startTargetConfig(t, 1<<20, nil, Config{MaxSessionBuffer: 8192})
	r := dialRaw(t, tt.addr, testIQN, "InitialR2T", "No", "ImmediateData", "Yes")
	status, _ := r.write(0, make([]byte, 16384))
	if status != statusTaskSetFull {
		t.Fatalf("write over budget: status %#x, want TASK SET FULL", status)
	}
	for range 3 {
		// The budget is returned after every command.
		if status, resp := r.write(0, make([]byte, 8192)); status != 0 {
			t.Fatalf("write within budget: status %#x sense %x", status, resp.data)
		}
	}
}

// TestRawNopInKeepAlive: a quiet initiator is pinged with NOP-In; one
// that answers keeps its session, one that does not loses it.
func TestRawNopInKeepAlive(t *testing.T) {
	t.Run("answered", func(t *testing.T) {
		tt := startTargetConfig(t, 1<<20, nil, Config{NopInInterval: 50 * time.Millisecond, NopInTimeout: 20 * time.Second})
		r := dialRaw(t, tt.addr, testIQN)
		for range 3 {
			p := r.recv()
			if p.h.opcode() != opNopIn || p.h.itt() != reservedTag || p.h.ttt() == reservedTag {
				t.Fatalf("opcode %#x ITT %#x TTT %#x, want a NOP-In asking for a reply", p.h.opcode(), p.h.itt(), p.h.ttt())
			}
			var b [bhsLen]byte
			b[0] = opNopOut | flagImmediate
			b[1] = flagFinal
			put32(b[16:20], reservedTag)
			put32(b[20:24], p.h.ttt())
			put32(b[24:28], r.cmdSN)
			r.send(b, nil)
		}
		r.c.SetDeadline(time.Now().Add(60 * time.Second))
		// Pings may interleave with the write's answers, so send the
		// write's PDUs and skip NOP-Ins until its response.
		itt := r.nextITT()
		b := r.command(itt, false, true, true, 512, cdb10(0x2a, 0, 1))
		r.send(b, make([]byte, 512))
		for {
			p := r.recv()
			if p.h.opcode() == opNopIn {
				continue
			}
			if p.h.opcode() != opSCSIResp || p.h.itt() != itt || p.h.bhs[3] != 0 {
				t.Fatalf("opcode %#x status %#x", p.h.opcode(), p.h.bhs[3])
			}
			break
		}
	})
	t.Run("unanswered", func(t *testing.T) {
		tt := startTargetConfig(t, 1<<20, nil, Config{NopInInterval: 50 * time.Millisecond, NopInTimeout: 200 * time.Millisecond})
		r := dialRaw(t, tt.addr, testIQN)
		pings := 0
		for {
			var h header
			if err := readHeader(r.br, &h, r.d); err != nil {
				break // the target closed the connection
			}
			if h.opcode() != opNopIn {
				t.Fatalf("opcode %#x", h.opcode())
			}
			pings++
		}
		if pings == 0 {
			t.Fatalf("connection closed without a NOP-In first")
		}
	})
}

// TestNopInWithLibiscsi: qemu's libiscsi answers the target's pings while
// idle (the target logs each NOP-Out that echoes a ping's tag), and its
// session survives the pause. The ping timeout is generous: the proof is
// the answer, not how fast it came.
func TestNopInWithLibiscsi(t *testing.T) {
	needTool(t, "qemu-io")
	tt := startTargetConfig(t, 1<<20, nil, Config{NopInInterval: 50 * time.Millisecond, NopInTimeout: 30 * time.Second})
	out, err := run(t, nil, 2*time.Minute, "qemu-io", "-f", "raw",
		"-c", "write -P 0x77 0 64k", "-c", "sleep 3000", "-c", "read -P 0x77 0 64k", tt.url(0))
	if err != nil || strings.Contains(out, "fail") || !strings.Contains(out, "read ") {
		t.Fatalf("qemu-io across pings: %v\n%s", err, out)
	}
	log := tt.logBuf.String()
	if strings.Contains(log, "did not answer NOP-In") {
		t.Fatalf("target dropped libiscsi for not answering NOP-In")
	}
	if !strings.Contains(log, "NOP-In ping") {
		t.Fatalf("no NOP-In was sent during the pause")
	}
	if !strings.Contains(log, "NOP-In answered") {
		t.Fatalf("libiscsi answered no NOP-In")
	}
}

// TestRawSimulation runs several sessions at once, each with randomly
// negotiated data-path keys, doing random writes and reads in its own
// region of the LUN and checking every read against a model of what it
// wrote. The seed is logged; VOLGW_SIM_SEED replays one. It runs twice:
// with the default write buffer, and with one of 128 KiB, where the
// sessions' writes (up to 128 KiB each) wait for one another's buffers.
func TestRawSimulation(t *testing.T) {
	t.Run("default", func(t *testing.T) { rawSimulation(t, Config{}) })
	t.Run("write-buffer-128KiB", func(t *testing.T) { rawSimulation(t, Config{WriteBuffer: 128 << 10}) })
}

func rawSimulation(t *testing.T, cfg Config) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("VOLGW_SIM_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = n
	}
	t.Logf("seed %d (VOLGW_SIM_SEED=%d replays)", seed, seed)
	const sessions = 4
	const region = 1 << 20
	const ops = 60
	tt := startTargetConfig(t, sessions*region, nil, cfg)
	errs := make(chan error, sessions)
	for s := range sessions {
		rng := mrand.New(mrand.NewSource(seed + int64(s)))
		pick := func(v ...string) string { return v[rng.Intn(len(v))] }
		kv := []string{
			"InitialR2T", pick("Yes", "No"),
			"ImmediateData", pick("Yes", "No"),
			"MaxBurstLength", pick("512", "4096", "65536", "262144"),
			"FirstBurstLength", pick("512", "8192", "65536"),
			"MaxOutstandingR2T", pick("1", "2", "4"),
			"MaxRecvDataSegmentLength", pick("512", "8192", "262144"),
			"HeaderDigest", pick("None", "CRC32C"),
			"DataDigest", pick("None", "CRC32C"),
		}
		go func() {
			errs <- func() (err error) {
				// rawInit reports through t.Fatal, which must not run
				// off the test goroutine: use a sub-T per session.
				ok := t.Run(fmt.Sprintf("session%d", s), func(t *testing.T) {
					r := dialRaw(t, tt.addr, testIQN, kv...)
					ourMRDSL, _ := strconv.Atoi(kv[11])
					model := make([]byte, region)
					base := uint32(s * region / 512)
					for range ops {
						blocks := 1 + rng.Intn(256)
						lba := rng.Intn(region/512 - blocks)
						off, n := lba*512, blocks*512
						if rng.Intn(2) == 0 {
							data := make([]byte, n)
							rng.Read(data)
							if status, resp := r.write(base+uint32(lba), data); status != 0 {
								t.Fatalf("write %d blocks at %d: status %#x sense %x", blocks, lba, status, resp.data)
							}
							copy(model[off:], data)
						} else {
							got := r.read(base+uint32(lba), uint32(n), uint32(ourMRDSL))
							if i := firstDiff(got, model[off:off+n]); i >= 0 {
								t.Fatalf("read %d blocks at %d: byte %d differs from the model (keys %v)", blocks, lba, i, kv)
							}
						}
					}
				})
				if !ok {
					return fmt.Errorf("session %d failed (keys %v)", s, kv)
				}
				return nil
			}()
		}()
	}
	for range sessions {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestNexusName checks the Command.Nexus spelling package scsi relies on.
func TestNexusName(t *testing.T) {
	tt := startTarget(t, 1<<20, nil)
	dialRawISID(t, tt.addr, testIQN, [6]byte{0x40, 0x12, 0x34, 0x56, 0x78, 0x9a})
	tt.srv.mu.Lock()
	defer tt.srv.mu.Unlock()
	want := "iqn.2026-01.test:raw,i,0x40123456789a," + testIQN
	for ss := range tt.srv.sessions {
		if ss.nexus != want {
			t.Errorf("nexus %q, want %q", ss.nexus, want)
		}
		return
	}
	t.Fatal("no session registered")
}

// TestRawImmediateBeyondEDTL sends more immediate data than the command's
// EDTL: the command fails, the stream stays framed (digests on) and the
// session goes on.
func TestRawImmediateBeyondEDTL(t *testing.T) {
	tt := startTarget(t, 1<<20, nil)
	r := dialRaw(t, tt.addr, testIQN, "DataDigest", "CRC32C", "HeaderDigest", "CRC32C", "ImmediateData", "Yes")
	itt := r.nextITT()
	b := r.command(itt, false, true, true, 512, cdb10(0x2a, 0, 1))
	r.send(b, make([]byte, 1000))
	p := r.recv()
	if p.h.opcode() != opSCSIResp || p.h.itt() != itt || p.h.bhs[3] != 0x02 {
		t.Fatalf("opcode %#x status %#x, want CHECK CONDITION", p.h.opcode(), p.h.bhs[3])
	}
	if p = r.nop(r.nextITT(), []byte("ok")); p.h.opcode() != opNopIn || string(p.data) != "ok" {
		t.Fatalf("after the failed command: opcode %#x data %q", p.h.opcode(), p.data)
	}
}

// TestRawCommandWindow fills a small command window again and again: the
// last response of each round must reopen it, or an initiator that honours
// MaxCmdSN would wait forever.
func TestRawCommandWindow(t *testing.T) {
	const window = 4
	tt := startTargetConfig(t, 1<<20, nil, Config{CommandWindow: window})
	r := dialRaw(t, tt.addr, testIQN)
	for round := range 50 {
		itts := map[uint32]bool{}
		for i := range window {
			itt := r.nextITT()
			itts[itt] = true
			b := r.command(itt, false, true, true, 4096, cdb10(0x2a, uint32(8*i), 8))
			r.send(b, make([]byte, 4096))
		}
		var last rawPDU
		for len(itts) > 0 {
			last = r.recv()
			if last.h.opcode() != opSCSIResp || !itts[last.h.itt()] || last.h.bhs[3] != 0 {
				t.Fatalf("round %d: opcode %#x ITT %#x status %#x", round, last.h.opcode(), last.h.itt(), last.h.bhs[3])
			}
			delete(itts, last.h.itt())
		}
		exp, maxSN := be32(last.h.bhs[28:32]), be32(last.h.bhs[32:36])
		if exp != r.cmdSN || snLess(maxSN, exp) {
			t.Fatalf("round %d: last response has ExpCmdSN %d MaxCmdSN %d: window closed", round, exp, maxSN)
		}
	}
}

// patternLU answers every read with a pattern derived from its LBA, built
// in the Command.DataInBuffer the transport offers (pooled and reused once
// sent), so that a buffer recycled too early shows as corrupt data.
type patternLU struct{ offered, used atomic.Int64 }

func (u *patternLU) Execute(_ context.Context, cmd *scsi.Command) scsi.Response {
	if !cmd.Read || len(cmd.CDB) < 10 {
		return scsi.Response{Status: scsi.StatusGood}
	}
	n := int(cmd.ExpectedDataTransferLength)
	buf := make([]byte, n)
	if cap(cmd.DataInBuffer) >= n {
		u.offered.Add(1)
		buf = cmd.DataInBuffer[:n]
		u.used.Add(1)
	}
	fillPattern(buf, be32(cmd.CDB[2:6]))
	return scsi.Response{Status: scsi.StatusGood, DataIn: buf}
}

func (u *patternLU) Reset(string) {}

func fillPattern(b []byte, lba uint32) {
	for i := range b {
		b[i] = byte(lba) ^ byte(i>>9) ^ byte(i)
	}
}

// TestPooledDataIn reads large patterns through several sessions at once
// and checks every byte: Data-In buffers go back to the pool only after
// the writer has sent them.
func TestPooledDataIn(t *testing.T) {
	srv := NewServer(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	lu := &patternLU{}
	if err := srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: lu}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	const sessions = 3
	errs := make(chan string, sessions)
	for s := range sessions {
		go func() {
			msg := ""
			t.Run(fmt.Sprintf("session%d", s), func(t *testing.T) {
				r := dialRaw(t, ln.Addr().String(), testIQN, "MaxRecvDataSegmentLength", "65536", "MaxBurstLength", "262144")
				for i := range 40 {
					lba := uint32(s*1000 + i)
					size := uint32(64<<10) << (i % 5) // 64 KiB .. 1 MiB
					got := r.read(lba, size, 65536)
					want := make([]byte, size)
					fillPattern(want, lba)
					if j := firstDiff(got, want); j >= 0 {
						msg = fmt.Sprintf("session %d read %d: byte %d of %d differs", s, i, j, size)
						return
					}
				}
			})
			errs <- msg
		}()
	}
	for range sessions {
		if m := <-errs; m != "" {
			t.Error(m)
		}
	}
	if lu.used.Load() == 0 {
		t.Fatalf("no read used the offered Data-In buffer")
	}
}

// TestInitiators: the server names the initiators logged in to a target
// (ListVolumeInitiators), once each however many sessions they hold, and
// forgets them when they leave.
func TestInitiators(t *testing.T) {
	tt := startTarget(t, 1<<20, nil)
	if got := tt.srv.Initiators(testIQN); len(got) != 0 {
		t.Fatalf("before login: %q", got)
	}
	a := dialRaw(t, tt.addr, testIQN)
	b := dialRaw(t, tt.addr, testIQN)
	if p := b.nop(b.nextITT(), []byte("x")); p.h.opcode() != opNopIn {
		t.Fatalf("nop: opcode %#x", p.h.opcode())
	}
	if got := tt.srv.Initiators(testIQN); !slices.Equal(got, []string{"iqn.2026-01.test:raw"}) {
		t.Fatalf("two sessions of one initiator: %q", got)
	}
	if got := tt.srv.Initiators(testIQN + "-other"); len(got) != 0 {
		t.Fatalf("another target: %q", got)
	}
	a.c.Close()
	b.c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(tt.srv.Initiators(testIQN)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions still listed after their connections closed: %q", tt.srv.Initiators(testIQN))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nexusRecorder is a target's real unit table with a log of the
// NexusLost calls it gets, to check when the transport makes them.
type nexusRecorder struct {
	scsi.LogicalUnit
	mu   sync.Mutex // guards lost
	lost []string
}

func (r *nexusRecorder) NexusLost(nexus string) {
	r.mu.Lock()
	r.lost = append(r.lost, nexus)
	r.mu.Unlock()
	r.LogicalUnit.(interface{ NexusLost(string) }).NexusLost(nexus)
}

func (r *nexusRecorder) lostCount(nexus string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lost {
		if l == nexus {
			n++
		}
	}
	return n
}

// startRecordedTarget serves the test target's unit again under a second
// name, through a nexusRecorder.
func startRecordedTarget(t *testing.T) (*testTarget, string, *nexusRecorder) {
	tt := startTarget(t, 1<<20, nil)
	rec := &nexusRecorder{LogicalUnit: mustLU(t, tt)}
	iqn := testIQN + "-recorded"
	if err := tt.srv.AddTarget(TargetConfig{IQN: iqn, LUNs: rec}); err != nil {
		t.Fatal(err)
	}
	return tt, iqn, rec
}

func rawNexus(isid [6]byte, iqn string) string {
	return "iqn.2026-01.test:raw,i,0x" + hex.EncodeToString(isid[:]) + "," + iqn
}

// reserve6 sends RESERVE(6) and returns the status.
func (r *rawInit) reserve6() byte {
	r.t.Helper()
	r.send(r.command(r.nextITT(), false, false, true, 0, []byte{0x16, 0, 0, 0, 0, 0}), nil)
	p := r.recv()
	if p.h.opcode() != opSCSIResp {
		r.t.Fatalf("RESERVE(6): opcode %#x", p.h.opcode())
	}
	return p.h.bhs[3]
}

// TestRawLogoutReleasesReservation: the unit hears NexusLost before the
// Logout Response leaves, so an initiator that logs out and at once
// reserves from another session finds the unit free (libiscsi's
// Reserve6.Logout, which failed under load when the release waited for
// the connection's teardown).
func TestRawLogoutReleasesReservation(t *testing.T) {
	tt, iqn, rec := startRecordedTarget(t)
	isidA := [6]byte{0x40, 0, 0, 0, 0, 0xa}
	a := dialRawISID(t, tt.addr, iqn, isidA)
	if st := a.reserve6(); st != 0 {
		t.Fatalf("RESERVE(6) from A: status %#x", st)
	}
	var b [bhsLen]byte
	b[0] = opLogoutReq | flagImmediate
	b[1] = flagFinal // reason 0: close the session
	put32(b[16:20], a.nextITT())
	put32(b[24:28], a.cmdSN)
	a.send(b, nil)
	if p := a.recv(); p.h.opcode() != opLogoutResp || p.h.bhs[2] != 0 {
		t.Fatalf("logout: opcode %#x response %d", p.h.opcode(), p.h.bhs[2])
	}
	if n := rec.lostCount(rawNexus(isidA, iqn)); n < 1 {
		t.Fatalf("NexusLost calls for A when its Logout Response arrived: %d, want at least 1", n)
	}
	other := dialRawISID(t, tt.addr, iqn, [6]byte{0x40, 0, 0, 0, 0, 0xb})
	if st := other.reserve6(); st != 0 {
		t.Fatalf("RESERVE(6) from another session after A logged out: status %#x", st)
	}
}

// TestRawReinstatementWaitsForOldNexus: a session reinstating a nexus is
// admitted only once the old session has told the unit NexusLost, so the
// old one's teardown can never release what the new one reserves.
func TestRawReinstatementWaitsForOldNexus(t *testing.T) {
	tt, iqn, rec := startRecordedTarget(t)
	isid := [6]byte{0x40, 0, 0, 0, 0, 0xc}
	first := dialRawISID(t, tt.addr, iqn, isid)
	if st := first.reserve6(); st != 0 {
		t.Fatalf("RESERVE(6): status %#x", st)
	}
	second := dialRawISID(t, tt.addr, iqn, isid)
	if n := rec.lostCount(rawNexus(isid, iqn)); n != 1 {
		t.Fatalf("NexusLost calls for the old session once the new one logged in: %d, want 1", n)
	}
	if st := second.reserve6(); st != 0 {
		t.Fatalf("RESERVE(6) by the reinstated session: status %#x", st)
	}
	if n := rec.lostCount(rawNexus(isid, iqn)); n != 1 {
		t.Fatalf("NexusLost calls for the nexus after the new session reserved: %d, want 1", n)
	}
}
