package iscsi

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/volgw/volgw/internal/scsi"
)

// gatedLU holds every WRITE (10) in Execute until its LBA is released;
// other commands succeed at once.
type gatedLU struct {
	entered chan uint32 // the LBA of each write that entered Execute
	mu      sync.Mutex  // guards gates and released
	gates   map[uint32]chan struct{}
	// released lists the LBAs whose gates are open.
	released map[uint32]bool
}

func newGatedLU() *gatedLU {
	return &gatedLU{entered: make(chan uint32, 64), gates: map[uint32]chan struct{}{}, released: map[uint32]bool{}}
}

func (g *gatedLU) gate(lba uint32) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gateLocked(lba)
}

func (g *gatedLU) gateLocked(lba uint32) chan struct{} {
	ch, ok := g.gates[lba]
	if !ok {
		ch = make(chan struct{})
		g.gates[lba] = ch
	}
	return ch
}

// release lets the write to lba return.
func (g *gatedLU) release(lba uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.released[lba] {
		g.released[lba] = true
		close(g.gateLocked(lba))
	}
}

// releaseAll lets every write return, those to come included.
func (g *gatedLU) releaseAll(upTo uint32) {
	for lba := range upTo + 1 {
		g.release(lba)
	}
}

func (g *gatedLU) Execute(_ context.Context, cmd *scsi.Command) scsi.Response {
	if cmd.CDB[0] == 0x2a {
		lba := be32(cmd.CDB[2:6])
		g.entered <- lba
		<-g.gate(lba)
	}
	return scsi.Response{Status: scsi.StatusGood}
}

func (g *gatedLU) Reset(string) {}

// startLUTarget serves lu as the whole target on 127.0.0.1, logging only
// warnings.
func startLUTarget(tb testing.TB, lu scsi.LogicalUnit) string {
	tb.Helper()
	srv := NewServer(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err := srv.AddTarget(TargetConfig{IQN: testIQN, LUNs: lu}); err != nil {
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

// sendWrite sends a 4 KiB WRITE (10) with immediate data and returns its ITT.
func (r *rawInit) sendWrite(lba uint32) uint32 {
	itt := r.nextITT()
	r.send(r.command(itt, false, true, true, 4096, cdb10(0x2a, lba, 8)), make([]byte, 4096))
	return itt
}

// TestRawAbortExecuting: a task management function that aborts commands
// executing in the logical unit answers only once they have returned,
// and they send no response; a logout waits for the commands in flight.
// Tasks are reused from command to command, so the rounds also check
// that a reused task carries nothing over.
func TestRawAbortExecuting(t *testing.T) {
	lu := newGatedLU()
	r := dialRaw(t, startLUTarget(t, lu), testIQN, "ImmediateData", "Yes", "InitialR2T", "No")
	t.Cleanup(func() { lu.releaseAll(64) }) // a failed test must not hang the server's Close
	var lba uint32
	for round := range 3 {
		// Three writes execute; the middle one is aborted.
		var itts [3]uint32
		var lbas [3]uint32
		for i := range itts {
			lba++
			lbas[i] = lba
			itts[i] = r.sendWrite(lba)
		}
		for range itts {
			<-lu.entered
		}
		tmfITT := r.nextITT()
		var tmf [bhsLen]byte
		tmf[0] = opTMFReq | flagImmediate
		tmf[1] = flagFinal | tmfAbortTask
		if round == 2 {
			tmf[1] = flagFinal | tmfAbortTaskSet // all three
		}
		put32(tmf[16:20], tmfITT)
		put32(tmf[20:24], itts[1])
		put32(tmf[24:28], r.cmdSN)
		r.send(tmf, nil)
		// The reader handles PDUs in order: once the NOP-In is back, the
		// task management function has been taken in.
		if p := r.nop(r.nextITT(), nil); p.h.opcode() != opNopIn {
			t.Fatalf("round %d: opcode %#x before the NOP-In, want none (the aborted task still executes)", round, p.h.opcode())
		}
		lu.release(lbas[0])
		lu.release(lbas[2])
		if round < 2 {
			want := map[uint32]bool{itts[0]: true, itts[2]: true}
			for range 2 {
				p := r.recv()
				if p.h.opcode() != opSCSIResp || !want[p.h.itt()] {
					t.Fatalf("round %d: opcode %#x ITT %#x, want the SCSI Responses of %#x and %#x", round, p.h.opcode(), p.h.itt(), itts[0], itts[2])
				}
				delete(want, p.h.itt())
			}
			if p := r.nop(r.nextITT(), nil); p.h.opcode() != opNopIn {
				t.Fatalf("round %d: opcode %#x, want no TMF response while the aborted task executes", round, p.h.opcode())
			}
		}
		lu.release(lbas[1])
		if p := r.recv(); p.h.opcode() != opTMFResp || p.h.itt() != tmfITT || p.h.bhs[2] != tmfComplete {
			t.Fatalf("round %d: opcode %#x ITT %#x response %d, want the TMF response", round, p.h.opcode(), p.h.itt(), p.h.bhs[2])
		}
		// Nothing from the aborted tasks follows.
		if p := r.nop(r.nextITT(), nil); p.h.opcode() != opNopIn {
			t.Fatalf("round %d: opcode %#x after the TMF response, want only the NOP-In", round, p.h.opcode())
		}
	}

	// A logout waits for the write in flight: its response comes first.
	lba++
	itt := r.sendWrite(lba)
	<-lu.entered
	var b [bhsLen]byte
	b[0] = opLogoutReq | flagImmediate
	b[1] = flagFinal
	put32(b[16:20], r.nextITT())
	put32(b[24:28], r.cmdSN)
	r.send(b, nil)
	lu.release(lba)
	if p := r.recv(); p.h.opcode() != opSCSIResp || p.h.itt() != itt {
		t.Fatalf("opcode %#x ITT %#x, want the write's response before the logout's", p.h.opcode(), p.h.itt())
	}
	if p := r.recv(); p.h.opcode() != opLogoutResp || p.h.bhs[2] != 0 {
		t.Fatalf("opcode %#x response %d, want the Logout Response", p.h.opcode(), p.h.bhs[2])
	}
}
