package iscsi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/scsi"
)

// The seed corpora under testdata/fuzz are the bytes real initiators sent
// to this target (iscsi-inq, iscsi-ls discovery, qemu-io with CHAP and
// with digests), recorded by TestCaptureSeedCorpus with VOLGW_CAPTURE=1.

// FuzzPDU frames arbitrary bytes as a PDU stream, with and without
// digests, and reads every header field the target uses.
func FuzzPDU(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range []digests{{}, {header: true, data: true}} {
			br := bufio.NewReader(bytes.NewReader(data))
			var h header
			var cdb [16]byte
			for i := 0; i < 64; i++ {
				if err := readHeader(br, &h, d); err != nil {
					break
				}
				_ = h.opcode()
				_ = decodeLUN(h.lunField())
				c := h.cdb(cdb[:0])
				if len(c) < 16 {
					t.Fatalf("CDB of %d bytes; the BHS alone holds 16", len(c))
				}
				_, _ = h.bidiReadLength()
				n := h.dataLen()
				if n > 1<<16 {
					break
				}
				buf := make([]byte, n)
				if err := readData(br, buf, d); err != nil && err != errDataDigest {
					break
				}
			}
		}
	})
}

// FuzzTextNegotiation parses arbitrary login text and negotiates it as a
// normal and as a discovery session; the answer must parse again and the
// agreed values must stay within what the target offers.
func FuzzTextNegotiation(f *testing.F) {
	f.Add([]byte("InitiatorName=iqn.x\x00MaxBurstLength=512\x00FirstBurstLength=16777215\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pairs, err := parseText(data)
		if err != nil {
			return
		}
		lim := targetLimits{MaxRecvDataSegmentLength: 262144, MaxBurstLength: 1 << 20, FirstBurstLength: 65536, MaxOutstandingR2T: 4}
		for _, discovery := range []bool{false, true} {
			n := newNegotiator(lim)
			resp := n.negotiate(pairs, nil, discovery)
			resp = n.declare(resp)
			n.finish()
			back, err := parseText(resp)
			if err != nil {
				t.Fatalf("our answer %q does not parse: %v", resp, err)
			}
			if len(back) == 0 {
				t.Fatalf("answer lacks MaxRecvDataSegmentLength")
			}
			s := n.sess
			for _, p := range back {
				var applied uint32
				switch p.key {
				case "MaxBurstLength":
					applied = s.MaxBurstLength
				case "FirstBurstLength":
					applied = s.FirstBurstLength
				case "MaxOutstandingR2T":
					applied = s.MaxOutstandingR2T
				default:
					continue
				}
				if p.value != valReject && p.value != valIrrelevant && p.value != strconv.FormatUint(uint64(applied), 10) {
					t.Fatalf("answered %s=%s but applies %d", p.key, p.value, applied)
				}
			}
			if s.MaxBurstLength > lim.MaxBurstLength || s.MaxBurstLength < 512 {
				t.Fatalf("MaxBurstLength %d outside [512, %d]", s.MaxBurstLength, lim.MaxBurstLength)
			}
			if s.FirstBurstLength > s.MaxBurstLength {
				t.Fatalf("FirstBurstLength %d > MaxBurstLength %d", s.FirstBurstLength, s.MaxBurstLength)
			}
			if s.MaxOutstandingR2T < 1 || s.MaxOutstandingR2T > lim.MaxOutstandingR2T {
				t.Fatalf("MaxOutstandingR2T %d", s.MaxOutstandingR2T)
			}
			if n.conn.SendLimit < 512 || n.conn.SendLimit >= 1<<24 {
				t.Fatalf("SendLimit %d", n.conn.SendLimit)
			}
			if s.ErrorRecoveryLevel != 0 || s.MaxConnections != 1 {
				t.Fatalf("ERL %d MaxConnections %d", s.ErrorRecoveryLevel, s.MaxConnections)
			}
		}
	})
}

// FuzzSession feeds arbitrary bytes to a live target connection, login
// included, with a real logical unit behind it. The target must neither
// panic nor hang once the stream ends.
func FuzzSession(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "lun.img")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		f.Fatal(err)
	}
	fb, err := scsi.OpenFileBackend(path, 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { fb.Close() })
	dev, err := scsi.NewDevice(fb, scsi.DeviceOptions{SerialNumber: "vol-fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	srv := NewServer(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LoginTimeout: 5 * time.Second})
	f.Cleanup(func() { srv.Close() })
	lun := scsi.NewLUNTable(map[uint64]scsi.LogicalUnit{0: dev})
	if err := srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: lun}); err != nil {
		f.Fatal(err)
	}
	if err := srv.AddTarget(TargetConfig{IQN: testIQN + "-chap", LUNs: lun, CHAP: []CHAPCredential{{
		InitiatorName: "volgw-user", SecretToAuthenticateInitiator: "initiator-secret-1", SecretToAuthenticateTarget: "target-secret-12",
	}}}); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.serveConn(context.Background(), pipeConn{server})
		}()
		// Drain whatever the target answers, so its writer never blocks.
		go io.Copy(io.Discard, client)
		client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("connection did not end after its input did")
		}
	})
}

// pipeConn gives a net.Pipe end TCP-like addresses, as SendTargets needs
// a local address to report.
type pipeConn struct{ net.Conn }

func (pipeConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3260} }
func (pipeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }

// recordingListener keeps every byte initiators send, per connection.
type recordingListener struct {
	net.Listener
	mu      sync.Mutex // guards streams
	streams []*bytes.Buffer
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	b := &bytes.Buffer{}
	l.mu.Lock()
	l.streams = append(l.streams, b)
	l.mu.Unlock()
	return &recordingConn{Conn: c, l: l, b: b}, nil
}

type recordingConn struct {
	net.Conn
	l *recordingListener
	b *bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.b.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}

// TestCaptureSeedCorpus records real initiator sessions against the target
// and writes them as seed corpora for FuzzPDU, FuzzSession (whole streams)
// and FuzzTextNegotiation (login and text data segments). It runs only
// with VOLGW_CAPTURE=1, since it rewrites testdata.
func TestCaptureSeedCorpus(t *testing.T) {
	if os.Getenv("VOLGW_CAPTURE") == "" {
		t.Skip("set VOLGW_CAPTURE=1 to re-record testdata/fuzz seed corpora")
	}
	needTool(t, "iscsi-inq")
	needTool(t, "qemu-io")
	path := filepath.Join(t.TempDir(), "lun.img")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	fb, err := scsi.OpenFileBackend(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	dev, err := scsi.NewDevice(fb, scsi.DeviceOptions{SerialNumber: "vol-fuzz"})
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	lun := scsi.NewLUNTable(map[uint64]scsi.LogicalUnit{0: dev})
	srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: lun})
	srv.AddTarget(TargetConfig{IQN: testIQN + "-chap", LUNs: lun, CHAP: []CHAPCredential{{
		InitiatorName: "volgw-user", SecretToAuthenticateInitiator: "initiator-secret-1", SecretToAuthenticateTarget: "target-secret-12",
	}}})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &recordingListener{Listener: inner}
	go srv.Serve(context.Background(), ln)
	defer srv.Close()
	addr := inner.Addr().String()
	url := fmt.Sprintf("iscsi://%s/%s/0", addr, testIQN)
	chapURL := fmt.Sprintf("iscsi://volgw-user%%initiator-secret-1@%s/%s-chap/0", addr, testIQN)
	runs := []struct {
		env  []string
		args []string
	}{
		{nil, []string{"iscsi-inq", url}},
		{nil, []string{"iscsi-inq", "-e", "1", "-c", "0x83", url}},
		{nil, []string{"iscsi-ls", "iscsi://" + addr}},
		{nil, []string{"qemu-io", "-f", "raw", "-c", "write -P 0xab 0 40k", "-c", "read -P 0xab 0 40k", "-c", "discard 0 64k", url}},
		{[]string{"LIBISCSI_CHAP_TARGET_USERNAME=" + testIQN + "-chap", "LIBISCSI_CHAP_TARGET_PASSWORD=target-secret-12"},
			[]string{"iscsi-inq", chapURL}},
		{nil, []string{"iscsi-inq", url + "?header_digest=crc32c"}},
	}
	for _, r := range runs {
		if out, err := run(t, r.env, 30*time.Second, r.args[0], r.args[1:]...); err != nil {
			t.Logf("%v: %v\n%s", r.args, err, out)
		}
	}
	srv.Close()
	ln.mu.Lock()
	defer ln.mu.Unlock()
	var texts [][]byte
	for i, s := range ln.streams {
		b := s.Bytes()
		if len(b) == 0 {
			continue
		}
		writeSeed(t, "FuzzSession", "session-"+strconv.Itoa(i), b)
		writeSeed(t, "FuzzPDU", "stream-"+strconv.Itoa(i), b)
		texts = append(texts, textSegments(b)...)
	}
	for i, tx := range texts {
		writeSeed(t, "FuzzTextNegotiation", "text-"+strconv.Itoa(i), tx)
	}
	if len(ln.streams) < len(runs) || len(texts) == 0 {
		t.Fatalf("captured %d streams, %d text segments", len(ln.streams), len(texts))
	}
}

// textSegments returns the data segments of the Login and Text requests
// at the start of a stream (before any digests are in force).
func textSegments(b []byte) [][]byte {
	var out [][]byte
	br := bufio.NewReader(bytes.NewReader(b))
	var h header
	for {
		if err := readHeader(br, &h, digests{}); err != nil {
			return out
		}
		d := make([]byte, h.dataLen())
		if err := readData(br, d, digests{}); err != nil {
			return out
		}
		if op := h.opcode(); op != opLoginReq && op != opTextReq {
			return out
		}
		if len(d) > 0 {
			out = append(out, d)
		}
	}
}

func writeSeed(t *testing.T, fuzz, name string, b []byte) {
	dir := filepath.Join("testdata", "fuzz", fuzz)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
