package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// goInitiator is the smallest iSCSI initiator (RFC 7143) that can send a
// persistent reservation CDB: no libiscsi tool does (and sg_persist needs
// a kernel initiator). It logs in without authentication and digests,
// with a fixed ISID, so that the same host comes back as the same I_T
// nexus after a restart, as an OS initiator does.
type goInitiator struct {
	t     *testing.T
	c     net.Conn
	br    *bufio.Reader
	itt   uint32
	cmdSN uint32
	lun   int
}

// iSCSI opcodes and flags the initiator uses.
const (
	giLoginReq  = 0x03
	giLoginResp = 0x23
	giSCSICmd   = 0x01
	giSCSIResp  = 0x21
	giDataIn    = 0x25
	giImmediate = 0x40
	giFinal     = 0x80
)

func dialGoInitiator(t *testing.T, v apiVolume, name string, isid byte) *goInitiator {
	t.Helper()
	c, err := net.DialTimeout("tcp", v.portal, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	g := &goInitiator{t: t, c: c, br: bufio.NewReader(c), cmdSN: 1, lun: v.lun}
	keys := func(kv ...string) []byte {
		var b []byte
		for i := 0; i < len(kv); i += 2 {
			b = append(append(b, kv[i]+"="+kv[i+1]...), 0)
		}
		return b
	}
	// Security stage (AuthMethod=None) to operational, then operational
	// to full feature phase.
	stages := []struct {
		flags byte
		text  []byte
	}{
		{0x80 | 0<<2 | 1, keys("InitiatorName", name, "TargetName", v.iqn, "SessionType", "Normal", "AuthMethod", "None")},
		{0x80 | 1<<2 | 3, keys("HeaderDigest", "None", "DataDigest", "None", "ImmediateData", "Yes", "InitialR2T", "Yes",
			"MaxRecvDataSegmentLength", "262144")},
	}
	for _, st := range stages {
		var b [48]byte
		b[0] = giLoginReq | giImmediate
		b[1] = st.flags
		b[8], b[13] = 0x40, isid // random-qualifier ISID type, fixed value
		binary.BigEndian.PutUint32(b[16:], g.nextITT())
		binary.BigEndian.PutUint32(b[24:], g.cmdSN)
		g.send(b, st.text)
		h, _ := g.recv()
		if h[0]&0x3f != giLoginResp || h[36] != 0 {
			t.Fatalf("login as %s: opcode %#x status %#02x%02x", name, h[0], h[36], h[37])
		}
	}
	// A new nexus may have a unit attention waiting; TEST UNIT READY takes
	// it out of the way.
	for range 4 {
		if status, _, _ := g.command(make([]byte, 6), nil, 0); status == 0 {
			return g
		}
	}
	t.Fatalf("%s: TEST UNIT READY keeps failing", name)
	return nil
}

func (g *goInitiator) nextITT() uint32 { g.itt++; return g.itt }

func (g *goInitiator) send(bhs [48]byte, data []byte) {
	g.t.Helper()
	n := len(data)
	bhs[5], bhs[6], bhs[7] = byte(n>>16), byte(n>>8), byte(n)
	buf := append(bhs[:], data...)
	buf = append(buf, make([]byte, (4-n%4)%4)...)
	if _, err := g.c.Write(buf); err != nil {
		g.t.Fatal(err)
	}
}

func (g *goInitiator) recv() ([48]byte, []byte) {
	g.t.Helper()
	var h [48]byte
	if _, err := io.ReadFull(g.br, h[:]); err != nil {
		g.t.Fatalf("receive: %v", err)
	}
	n := int(h[5])<<16 | int(h[6])<<8 | int(h[7])
	data := make([]byte, n+(4-n%4)%4)
	if _, err := io.ReadFull(g.br, data); err != nil {
		g.t.Fatalf("receive data: %v", err)
	}
	return h, data[:n]
}

// command runs one CDB with out as immediate data (at most the first
// burst) or reading up to in bytes, and returns the status, the Data-In
// and the sense data.
func (g *goInitiator) command(cdb, out []byte, in uint32) (status byte, data, sense []byte) {
	g.t.Helper()
	var b [48]byte
	b[0] = giSCSICmd
	b[1] = giFinal | 1 // SIMPLE
	edtl := in
	if out != nil {
		b[1] |= 0x20
		edtl = uint32(len(out))
	} else if in > 0 {
		b[1] |= 0x40
	}
	if g.lun != 0 {
		b[9] = byte(g.lun) // peripheral addressing
	}
	itt := g.nextITT()
	binary.BigEndian.PutUint32(b[16:], itt)
	binary.BigEndian.PutUint32(b[20:], edtl)
	binary.BigEndian.PutUint32(b[24:], g.cmdSN)
	g.cmdSN++
	copy(b[32:], cdb)
	g.send(b, out)
	for {
		h, d := g.recv()
		switch h[0] & 0x3f {
		case giDataIn:
			data = append(data, d...)
			if h[1]&0x01 != 0 {
				return h[3], data, nil
			}
		case giSCSIResp:
			if len(d) >= 2 {
				sense = d[2:]
			}
			return h[3], data, sense
		default:
			// NOP-In pings and asynchronous messages: not needed here.
		}
	}
}

// Persistent reservation CDBs (SPC-4 6.15, 6.16).
func prOut(sa, typ byte, key, sark uint64, aptpl bool) (cdb, param []byte) {
	cdb = make([]byte, 10)
	cdb[0], cdb[1], cdb[2] = 0x5f, sa, typ
	binary.BigEndian.PutUint32(cdb[5:], 24)
	param = make([]byte, 24)
	binary.BigEndian.PutUint64(param, key)
	binary.BigEndian.PutUint64(param[8:], sark)
	if aptpl {
		param[20] = 1
	}
	return cdb, param
}

func (g *goInitiator) prOut(sa, typ byte, key, sark uint64, aptpl bool) {
	g.t.Helper()
	cdb, param := prOut(sa, typ, key, sark, aptpl)
	if status, _, sense := g.command(cdb, param, 0); status != 0 {
		g.t.Fatalf("PERSISTENT RESERVE OUT sa %#x: status %#x sense %x", sa, status, sense)
	}
}

// readKeys returns the registered keys (PERSISTENT RESERVE IN, READ KEYS).
func (g *goInitiator) readKeys() []uint64 {
	g.t.Helper()
	status, d, sense := g.command([]byte{0x5e, 0x00, 0, 0, 0, 0, 0, 0x04, 0, 0}, nil, 1024)
	if status != 0 || len(d) < 8 {
		g.t.Fatalf("READ KEYS: status %#x sense %x", status, sense)
	}
	var keys []uint64
	for i := 8; i+8 <= 8+int(binary.BigEndian.Uint32(d[4:])) && i+8 <= len(d); i += 8 {
		keys = append(keys, binary.BigEndian.Uint64(d[i:]))
	}
	slices.Sort(keys)
	return keys
}

// readReservation returns the holder's key and the type (READ RESERVATION).
func (g *goInitiator) readReservation() (key uint64, typ byte) {
	g.t.Helper()
	status, d, sense := g.command([]byte{0x5e, 0x01, 0, 0, 0, 0, 0, 0x04, 0, 0}, nil, 1024)
	if status != 0 || len(d) < 8 {
		g.t.Fatalf("READ RESERVATION: status %#x sense %x", status, sense)
	}
	if binary.BigEndian.Uint32(d[4:]) == 0 {
		return 0, 0
	}
	return binary.BigEndian.Uint64(d[8:]), d[21] & 0x0f
}

// write10 writes one zero block at lba and returns the status.
func (g *goInitiator) write10(lba uint32) byte {
	g.t.Helper()
	cdb := make([]byte, 10)
	cdb[0] = 0x2a
	binary.BigEndian.PutUint32(cdb[2:], lba)
	cdb[8] = 1
	status, _, _ := g.command(cdb, make([]byte, 512), 0)
	return status
}

// describeVolume is where an initiator finds a volume now (the portal
// moves with each start of a test server).
func describeVolume(t *testing.T, ctx context.Context, c sdkClients, arn string) apiVolume {
	t.Helper()
	desc, err := c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{arn}})
	if err != nil || len(desc.CachediSCSIVolumes) != 1 {
		t.Fatalf("DescribeCachediSCSIVolumes %s: %+v %v", arn, desc, err)
	}
	attrs := desc.CachediSCSIVolumes[0].VolumeiSCSIAttributes
	tarn := aws.ToString(attrs.TargetARN)
	return apiVolume{arn: arn, targetARN: tarn,
		portal: aws.ToString(attrs.NetworkInterfaceId) + ":" + strconv.Itoa(int(attrs.NetworkInterfacePort)),
		iqn:    tarn[strings.Index(tarn, "/target/")+len("/target/"):], lun: int(aws.ToInt32(attrs.LunNumber))}
}

// TestPersistentReservationsSurviveRestart: registrations made with APTPL
// and the reservation they hold come back after volgw restarts (SPC-4
// 5.13.5), and keep fencing other hosts; registrations without APTPL do
// not. A deleted volume's reservation file goes with it.
func TestPersistentReservationsSurviveRestart(t *testing.T) {
	dataDir := t.TempDir()
	first := startServer(t, dataDir)
	ctx := context.Background()
	c := newSDKClients(first.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, first.endpoint())
	fenced := createAPIVolume(t, ctx, c, g, "pr-aptpl", 1<<30)
	plain := createAPIVolume(t, ctx, c, g, "pr-plain", 1<<30)
	const hostA, hostB = "iqn.2026-11.test:pr-host-a", "iqn.2026-11.test:pr-host-b"
	const keyA, keyB = 0xa1a1, 0xb2b2
	const writeExclusive = 1

	a := dialGoInitiator(t, fenced, hostA, 1)
	b := dialGoInitiator(t, fenced, hostB, 2)
	a.prOut(0x00, 0, 0, keyA, true) // REGISTER, APTPL
	b.prOut(0x00, 0, 0, keyB, true)
	a.prOut(0x01, writeExclusive, keyA, 0, false) // RESERVE
	if st := b.write10(0); st != 0x18 {
		t.Fatalf("write by host B under A's WRITE EXCLUSIVE: status %#x, want RESERVATION CONFLICT", st)
	}
	p := dialGoInitiator(t, plain, hostA, 1)
	p.prOut(0x00, 0, 0, keyA, false) // REGISTER without APTPL
	p.prOut(0x01, writeExclusive, keyA, 0, false)
	a.c.Close()
	b.c.Close()
	p.c.Close()
	fencedID := fenced.arn[strings.LastIndex(fenced.arn, "/")+1:]
	prFile := filepath.Join(dataDir, "reservations", fencedID+".pr")
	if _, err := os.Stat(prFile); err != nil {
		t.Fatalf("reservation file of the APTPL volume: %v", err)
	}

	if err := first.close(); err != nil {
		t.Fatal(err)
	}
	second := startServer(t, dataDir)
	c = newSDKClients(second.endpoint(), e2eKeyID, e2eSecret)
	fenced = describeVolume(t, ctx, c, fenced.arn)
	plain = describeVolume(t, ctx, c, plain.arn)

	b = dialGoInitiator(t, fenced, hostB, 2)
	if keys := b.readKeys(); !slices.Equal(keys, []uint64{keyA, keyB}) {
		t.Fatalf("READ KEYS after restart: %#x, want %#x and %#x", keys, keyA, keyB)
	}
	if key, typ := b.readReservation(); key != keyA || typ != writeExclusive {
		t.Fatalf("READ RESERVATION after restart: key %#x type %d, want %#x WRITE EXCLUSIVE", key, typ, keyA)
	}
	if st := b.write10(0); st != 0x18 {
		t.Fatalf("write by host B after restart: status %#x, want RESERVATION CONFLICT", st)
	}
	a = dialGoInitiator(t, fenced, hostA, 1)
	if st := a.write10(0); st != 0 {
		t.Fatalf("write by the holder after restart: status %#x", st)
	}
	p = dialGoInitiator(t, plain, hostB, 2)
	if keys := p.readKeys(); len(keys) != 0 {
		t.Fatalf("READ KEYS on the volume registered without APTPL: %#x, want none", keys)
	}
	if st := p.write10(0); st != 0 {
		t.Fatalf("write on the volume reserved without APTPL after restart: status %#x", st)
	}

	// DeleteVolume: the file goes once the engine has let the volume go
	// (the exporter's next change sweeps it; here, the next volume).
	if _, err := c.sgw.DeleteVolume(ctx, &storagegateway.DeleteVolumeInput{VolumeARN: aws.String(fenced.arn)}); err != nil {
		t.Fatal(err)
	}
	createAPIVolume(t, ctx, c, g, "pr-next", 1<<30)
	if _, err := os.Stat(prFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("reservation file of a deleted volume: %v", err)
	}
}
