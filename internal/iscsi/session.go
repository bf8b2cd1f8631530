package iscsi

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/volgw/volgw/internal/scsi"
)

// session is one iSCSI session in full feature phase. volgw allows one
// connection per session (MaxConnections=1), so the session also is the
// connection: one reader goroutine (run) receives every PDU in order, one
// writer goroutine (writeLoop) sends every PDU, and each SCSI command
// executes on its own goroutine once its data is gathered.
type session struct {
	srv       *Server
	nc        net.Conn
	br        *bufio.Reader
	log       *slog.Logger
	tgt       *target // nil in a discovery session
	discovery bool

	// luMu guards lu. Every use of the unit (a command executing, a reset,
	// the end-of-session NexusLost) holds it for reading, so withdraw,
	// which takes it for writing, returns only once nothing runs on the
	// old unit any more.
	luMu sync.RWMutex
	lu   scsi.LogicalUnit
	// withdrawn: the target was removed while this session was logged
	// in; lu is a unit table with no units (see Server.RemoveTarget).
	withdrawn atomic.Bool

	initiatorName string
	isid          [6]byte
	tsih          uint16
	cid           uint16
	nexus         string
	sp            sessionParams
	cp            connParams
	window        uint32

	// expCmdSN is written by the reader and read by the writer when it
	// stamps ExpCmdSN/MaxCmdSN on outgoing PDUs.
	expCmdSN atomic.Uint32
	// outstanding counts admitted commands not yet answered; MaxCmdSN
	// shrinks the window by it, which is how the target applies back
	// pressure (initiators ignore a MaxCmdSN that decreases).
	outstanding atomic.Int32
	// sendLimit is the initiator's MaxRecvDataSegmentLength; a Text
	// Request may change it while commands execute.
	sendLimit atomic.Uint32
	// buffered is the Data-Out buffer space held by this session's tasks,
	// bounded by Config.MaxSessionBuffer.
	buffered atomic.Int64
	// wbAcct is the session's share of Server.writeBufs.
	wbAcct bufferAccount
	// lastHeard is when the reader last received a PDU (Config.Now, in
	// nanoseconds), for NOP-In liveness checks.
	lastHeard atomic.Int64
	// statSN is owned by the writer goroutine once run starts.
	statSN uint32
	// trainBHS is the writer's scratch header for the PDUs of a Data-In
	// train.
	trainBHS [bhsLen]byte

	out       chan *outPDU
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	// writerDone is closed when the writer goroutine has exited.
	writerDone chan struct{}
	// ended is closed once the session has ended for good: its unit has
	// been told NexusLost, so a session reinstating the same nexus (same
	// initiator, ISID and target) cannot have its new state undone by the
	// old one's teardown.
	ended chan struct{}

	// execWG counts the session's goroutines other than the reader and
	// writer (workers, buffer waits, task management, logout), so
	// teardown can wait for them.
	execWG sync.WaitGroup

	// executing counts commands handed to workers that have not yet
	// returned from the logical unit: responses that may come soon, which
	// the writer gives a chance to join its batch (writeLoop).
	executing atomic.Int32

	// watchers counts goroutines waiting for tasks to finish (watch).
	watchers atomic.Int32

	// workMu guards idle and workersStopped: the worker goroutines that
	// wait for a command to execute, most recently idle last.
	workMu         sync.Mutex
	idle           []*worker
	workersStopped bool

	// mu guards tasks, r2ts, and each task's aborted and completing flags.
	mu    sync.Mutex
	tasks map[uint32]*task   // by ITT, from admission until the response is queued
	r2ts  map[uint32]*r2tSeq // outstanding R2Ts by TTT
	// freeSeqs are R2T sequences kept for reuse.
	freeSeqs []*r2tSeq

	// Reader-goroutine state.
	nextTTT  uint32
	textCont []byte // SendTargets text not yet sent (C bit continuation)
	textTTT  uint32
	textIn   []byte // text request keys gathered over C-bit PDUs
}

func newSession(lc *loginConn) *session {
	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{
		srv:           lc.srv,
		nc:            lc.nc,
		br:            lc.br,
		tgt:           lc.tgt,
		discovery:     lc.discovery,
		initiatorName: lc.initiatorName,
		isid:          lc.isid,
		cid:           lc.cid,
		sp:            lc.neg.sess,
		cp:            lc.neg.conn,
		window:        lc.srv.cfg.CommandWindow,
		out:           make(chan *outPDU, 1024),
		ctx:           ctx,
		cancel:        cancel,
		writerDone:    make(chan struct{}),
		ended:         make(chan struct{}),
		tasks:         make(map[uint32]*task),
		r2ts:          make(map[uint32]*r2tSeq),
		nextTTT:       1,
	}
	if ss.tgt != nil {
		ss.lu = ss.tgt.lu
		ss.nexus = ss.initiatorName + ",i,0x" + hex.EncodeToString(ss.isid[:]) + "," + ss.tgt.iqn
	}
	ss.expCmdSN.Store(lc.expCmdSN)
	ss.sendLimit.Store(ss.cp.SendLimit)
	ss.log = lc.log.With("initiator", ss.initiatorName, "isid", hex.EncodeToString(ss.isid[:]))
	if ss.tgt != nil {
		ss.log = ss.log.With("target", ss.tgt.iqn)
	}
	return ss
}

// close ends the session: the connection closes, the reader and writer
// stop. Commands executing finish on their own; see waitTasks.
func (ss *session) close() {
	ss.closeOnce.Do(func() {
		ss.cancel()
		ss.nc.Close()
	})
}

// worker is a goroutine that executes the session's commands one after
// another. Handing a command to an idle worker costs one wake-up, where a
// goroutine per command also costs its creation and, every time, growing
// a fresh stack to the depth of the logical unit's call chain (the
// volume engine's is deep): measured with BenchmarkWrite4KQD32 and on
// the product path.
type worker struct {
	next chan *task // capacity 1; closed by stopWorkers
}

// maxIdleWorkers bounds the workers a session keeps idle; beyond it a
// worker that finishes its command exits.
const maxIdleWorkers = 64

// dispatch hands t to an idle worker, or to a new one. Reader goroutine
// only: that stopWorkers runs only after the reader has returned is what
// makes the send safe.
func (ss *session) dispatch(t *task) {
	ss.executing.Add(1)
	ss.workMu.Lock()
	if n := len(ss.idle); n > 0 {
		w := ss.idle[n-1]
		ss.idle[n-1] = nil
		ss.idle = ss.idle[:n-1]
		ss.workMu.Unlock()
		w.next <- t
		return
	}
	ss.workMu.Unlock()
	ss.execWG.Add(1)
	go ss.work(&worker{next: make(chan *task, 1)}, t)
}

// work executes t, then whatever commands dispatch hands it, until the
// session stops its workers or enough others are idle.
func (ss *session) work(w *worker, t *task) {
	defer ss.execWG.Done()
	for {
		ss.execute(t)
		ss.workMu.Lock()
		if ss.workersStopped || len(ss.idle) >= maxIdleWorkers {
			ss.workMu.Unlock()
			return
		}
		ss.idle = append(ss.idle, w)
		ss.workMu.Unlock()
		var ok bool
		if t, ok = <-w.next; !ok {
			return
		}
	}
}

// stopWorkers ends the idle workers, and the busy ones once their command
// is done. Called once the reader has returned, so no command is
// dispatched after it.
func (ss *session) stopWorkers() {
	ss.workMu.Lock()
	defer ss.workMu.Unlock()
	ss.workersStopped = true
	for _, w := range ss.idle {
		close(w.next)
	}
	ss.idle = nil
}

// waitTasks waits for every command goroutine to return.
func (ss *session) waitTasks() { ss.execWG.Wait() }

// nexusLoser is implemented by logical units that keep per-nexus state.
type nexusLoser interface{ NexusLost(nexus string) }

// run serves the session until the connection ends.
func (ss *session) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, ss.close)
	defer stop()
	go ss.writeLoop()
	if ss.srv.cfg.NopInInterval > 0 {
		ss.lastHeard.Store(ss.srv.cfg.Now().UnixNano())
		go ss.keepAlive()
	}
	err := ss.readLoop()
	if err != nil && ss.ctx.Err() == nil {
		ss.log.Debug("iscsi: connection ended", "err", err)
	}
	ss.close()
	<-ss.writerDone
	ss.stopWorkers()
	ss.execWG.Wait()
	ss.releaseAll()
	ss.nexusLost()
}

// nexusLost tells the unit that the session's nexus has ended (its SPC-2
// reservation goes, SPC-4 5.13.1). It comes on logout, before the Logout
// Response, and again when the session ends, in case a command slipped in
// between; a unit treats the second as a no-op.
func (ss *session) nexusLost() {
	ss.luMu.RLock()
	defer ss.luMu.RUnlock()
	if nl, ok := ss.lu.(nexusLoser); ok && ss.lu != nil {
		nl.NexusLost(ss.nexus)
	}
}

// withdraw detaches the session from its target's logical units, which
// are going away: from now on it answers every command as a target with
// no logical units does (CHECK CONDITION, ILLEGAL REQUEST, LOGICAL UNIT
// NOT SUPPORTED; INQUIRY with peripheral qualifier 011b; an empty REPORT
// LUNS). It returns once no command runs on the old units.
func (ss *session) withdraw() {
	ss.luMu.Lock()
	defer ss.luMu.Unlock()
	ss.lu = scsi.NewLUNTable(nil)
	ss.withdrawn.Store(true)
}

// releaseAll returns the buffers of tasks still gathering data.
func (ss *session) releaseAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for itt, t := range ss.tasks {
		if t.state == taskGathering {
			ss.releaseBuf(t)
		}
		delete(ss.tasks, itt)
	}
	clear(ss.r2ts)
}

// readLoop receives PDUs until the connection fails.
func (ss *session) readLoop() error {
	var h header
	limit := int(ss.srv.cfg.MaxRecvDataSegmentLength)
	for {
		if err := readHeader(ss.br, &h, ss.cp.digests); err != nil {
			return err
		}
		if ss.srv.cfg.NopInInterval > 0 {
			ss.lastHeard.Store(ss.srv.cfg.Now().UnixNano())
		}
		if h.dataLen() > limit {
			return fmt.Errorf("%w: %d bytes", ErrPDUTooLong, h.dataLen())
		}
		var err error
		switch h.opcode() {
		case opSCSICmd:
			err = ss.handleCommand(&h)
		case opDataOut:
			err = ss.handleDataOut(&h)
		case opNopOut:
			err = ss.handleNop(&h)
		case opTMFReq:
			err = ss.handleTMF(&h)
		case opTextReq:
			err = ss.handleText(&h)
		case opLogoutReq:
			err = ss.handleLogout(&h)
		case opSNACK:
			// ErrorRecoveryLevel is 0: no retransmission.
			err = ss.reject(&h, rejectProtocol)
		default:
			err = ss.reject(&h, rejectNotSupported)
		}
		if err != nil {
			return err
		}
	}
}

// admit applies the command numbering rules (RFC 7143 4.2.2.1) to a
// request: immediate requests are always delivered; others only with
// CmdSN == ExpCmdSN, since with one connection an in-window gap can never
// fill. Requests outside the window are silently ignored, as the RFC
// requires.
func (ss *session) admit(h *header) bool {
	if h.immediate() {
		return true
	}
	exp := ss.expCmdSN.Load()
	if h.cmdSN() != exp {
		ss.log.Debug("iscsi: CmdSN outside window ignored", "cmdsn", h.cmdSN(), "expcmdsn", exp)
		return false
	}
	ss.expCmdSN.Store(exp + 1)
	return true
}

// maxCmdSN is the MaxCmdSN to advertise now.
func (ss *session) maxCmdSN(exp uint32) uint32 {
	free := int64(ss.window) - int64(ss.outstanding.Load())
	if free < 0 {
		free = 0
	}
	return exp - 1 + uint32(free)
}

// reject sends a Reject for h and skips its data segment.
func (ss *session) reject(h *header, reason byte) error {
	if err := discardData(ss.br, h.dataLen(), ss.cp.digests); err != nil {
		return err
	}
	ss.sendReject(h, reason)
	return nil
}

func (ss *session) sendReject(h *header, reason byte) {
	p := newOut()
	p.bhs[0] = opReject
	p.bhs[1] = flagFinal
	p.bhs[2] = reason
	put32(p.bhs[16:20], reservedTag)
	p.own = make([]byte, bhsLen)
	copy(p.own, h.bhs[:])
	p.data = p.own
	p.sn = snAdvance
	ss.send(p)
}

// send queues a PDU for the writer. It never blocks past the session's end.
func (ss *session) send(p *outPDU) {
	select {
	case ss.out <- p:
	case <-ss.ctx.Done():
		p.release()
	}
}

// handleNop answers a NOP-Out (RFC 7143 11.18).
func (ss *session) handleNop(h *header) error {
	n := h.dataLen()
	if !ss.admit(h) || h.itt() == reservedTag {
		// Either ignored, or a ping reply / CmdSN update needing no answer.
		if h.itt() == reservedTag && h.ttt() != reservedTag {
			ss.log.Debug("iscsi: NOP-In answered", "ttt", h.ttt())
		}
		return discardData(ss.br, n, ss.cp.digests)
	}
	p := newOut()
	if n > 0 {
		p.own = make([]byte, n)
		if err := readData(ss.br, p.own, ss.cp.digests); err != nil {
			if errors.Is(err, errDataDigest) {
				ss.sendReject(h, rejectDataDigest)
				return nil
			}
			return err
		}
		// Echo at most what the initiator can receive.
		p.data = p.own[:min(n, int(ss.sendLimit.Load()))]
	}
	p.bhs[0] = opNopIn
	p.bhs[1] = flagFinal
	copy(p.bhs[8:16], h.lunField())
	put32(p.bhs[16:20], h.itt())
	put32(p.bhs[20:24], reservedTag)
	p.sn = snAdvance
	ss.send(p)
	return nil
}

// handleLogout ends the session or connection once every command in
// flight has been answered (RFC 7143 11.14).
func (ss *session) handleLogout(h *header) error {
	if err := discardData(ss.br, h.dataLen(), ss.cp.digests); err != nil {
		return err
	}
	if !ss.admit(h) {
		return nil
	}
	reason := h.flags() & 0x7f
	response := byte(0) // connection or session closed successfully
	switch reason {
	case 0: // close the session
	case 1: // close the connection
		if be16(h.bhs[20:22]) != ss.cid {
			response = 1 // CID not found
		}
	case 2: // remove the connection for recovery
		response = 2 // connection recovery is not supported
	default:
		ss.sendReject(h, rejectInvalidField)
		return nil
	}
	itt := h.itt()
	ss.execWG.Add(1)
	go func() {
		defer ss.execWG.Done()
		ss.waitOthers()
		if response == 0 && ss.ctx.Err() == nil {
			// The nexus ends with this response: what it held (an SPC-2
			// reservation) is released before the initiator can see the
			// logout complete, not whenever the teardown gets to it. An
			// initiator that logs out and at once has another session
			// reserve (libiscsi's Reserve6.Logout) must not find the old
			// reservation still there.
			ss.nexusLost()
		}
		p := newOut()
		p.bhs[0] = opLogoutResp
		p.bhs[1] = flagFinal
		p.bhs[2] = response
		put32(p.bhs[16:20], itt)
		// Time2Wait and Time2Retain stay 0: reconnect at once, nothing to retain.
		p.sn = snAdvance
		p.closeAfter = response == 0
		ss.send(p)
	}()
	return nil
}

// waitOthers waits until no task is pending.
func (ss *session) waitOthers() {
	defer ss.watch()()
	for {
		ss.mu.Lock()
		var finished <-chan struct{}
		for _, t := range ss.tasks {
			finished = ss.finishedLocked(t)
			break
		}
		ss.mu.Unlock()
		if finished == nil {
			return
		}
		select {
		case <-finished:
		case <-ss.ctx.Done():
			return
		}
	}
}

// writeLoop sends queued PDUs, batching them into as few writes as the
// queue allows: it flushes only when the queue is empty. When it finds
// the queue empty while commands are executing, it first yields the
// processor once, so that those already runnable queue their responses
// and one writev carries them all: under a 4 KiB QD32 write load this
// takes the target's writes from 0.7 to under 0.2 per command
// (BenchmarkWrite4KQD32). A command blocked in its logical unit is not
// waited for.
func (ss *session) writeLoop() {
	defer close(ss.writerDone)
	bw := newBatchWriter(ss.nc, 256<<10)
	for {
		var p *outPDU
		select {
		case p = <-ss.out:
		case <-ss.ctx.Done():
			return
		}
		err := ss.writePDU(bw, p)
		if p.recycle != nil {
			bw.recycleAfterFlush(p.recycle)
		}
		closeAfter := p.closeAfter
		p.release()
		if err == nil && len(ss.out) == 0 && !closeAfter && ss.executing.Load() > 0 {
			// Commands are running: let them queue their responses
			// before the flush, so one system call carries several.
			runtime.Gosched()
		}
		if err == nil && (len(ss.out) == 0 || closeAfter) {
			err = bw.Flush()
		}
		if err != nil {
			ss.log.Debug("iscsi: write failed", "err", err)
			ss.close()
			return
		}
		if closeAfter {
			ss.close()
			return
		}
	}
}

// snMode says how a PDU carries StatSN.
type snMode byte

const (
	snNone    snMode = iota // no StatSN (Data-In without status)
	snCurrent               // the next StatSN, not consumed (R2T, unsolicited NOP-In)
	snAdvance               // a status-bearing PDU: takes a StatSN
)

// outPDU is one PDU (or, for Data-In, one whole read's worth of PDUs)
// waiting for the writer. The writer stamps StatSN, ExpCmdSN and
// MaxCmdSN at send time, so they are always current and in order.
type outPDU struct {
	bhs  [bhsLen]byte
	data []byte
	sn   snMode
	// own is a buffer this PDU owns (echoed ping data, sense, text).
	own []byte
	// recycle is a pooled buffer data lives in, returned to the pool once
	// the data has been sent.
	recycle []byte
	// dataIn, when set, makes this a Data-In train: data is split into
	// PDUs of at most seg bytes, bursts of at most burst bytes, and the
	// last PDU carries the status when withStatus.
	dataIn     bool
	seg, burst uint32
	withStatus bool
	status     byte
	resFlags   byte
	residual   uint32
	closeAfter bool
}

var outPool = sync.Pool{New: func() any { return new(outPDU) }}

func newOut() *outPDU {
	p := outPool.Get().(*outPDU)
	*p = outPDU{}
	return p
}

func (p *outPDU) release() {
	p.data, p.own, p.recycle = nil, nil, nil
	outPool.Put(p)
}

// writePDU writes p (or its Data-In train) to bw.
func (ss *session) writePDU(bw *batchWriter, p *outPDU) error {
	exp := ss.expCmdSN.Load()
	put32(p.bhs[28:32], exp)
	put32(p.bhs[32:36], ss.maxCmdSN(exp))
	if !p.dataIn {
		switch p.sn {
		case snCurrent:
			put32(p.bhs[24:28], ss.statSN)
		case snAdvance:
			put32(p.bhs[24:28], ss.statSN)
			ss.statSN++
		}
		putU24(p.bhs[5:8], uint32(len(p.data)))
		return ss.writeOne(bw, &p.bhs, p.data)
	}
	// A Data-In train (RFC 7143 11.7). DataSN counts every PDU of the
	// command; F ends each burst.
	total := uint32(len(p.data))
	var dataSN, off, inBurst uint32
	for off < total {
		n := min(p.seg, total-off, p.burst-inBurst)
		last := off+n == total
		b := &ss.trainBHS // not a local: writeOne's digest would move it to the heap
		*b = p.bhs
		b[1] = 0
		if last || inBurst+n == p.burst {
			b[1] |= flagFinal
		}
		if last && p.withStatus {
			b[1] |= flagStatus | p.resFlags
			b[3] = p.status
			put32(b[24:28], ss.statSN)
			ss.statSN++
			put32(b[44:48], p.residual)
		}
		putU24(b[5:8], n)
		put32(b[36:40], dataSN)
		put32(b[40:44], off)
		if err := ss.writeOne(bw, b, p.data[off:off+n]); err != nil {
			return err
		}
		dataSN++
		off += n
		inBurst += n
		if inBurst == p.burst {
			inBurst = 0
		}
	}
	return nil
}

// zeroPad is the padding of a data segment, for its digest. (tail in
// writeOne stays on the stack only as long as crc32 never sees it.)
var zeroPad [3]byte

// writeOne writes one PDU with padding and the negotiated digests.
func (ss *session) writeOne(bw *batchWriter, bhs *[bhsLen]byte, data []byte) error {
	if err := bw.copyIn(bhs[:]); err != nil {
		return err
	}
	var tail [8]byte
	if ss.cp.header {
		binary.LittleEndian.PutUint32(tail[:4], crc32.Checksum(bhs[:], castagnoli))
		if err := bw.copyIn(tail[:4]); err != nil {
			return err
		}
	}
	if len(data) == 0 {
		return nil
	}
	var err error
	if len(data) >= refThreshold {
		err = bw.writeRef(data)
	} else {
		err = bw.copyIn(data)
	}
	if err != nil {
		return err
	}
	pad := padLen(len(data))
	clear(tail[:])
	n := pad
	if ss.cp.data {
		crc := crc32.Update(0, castagnoli, data)
		crc = crc32.Update(crc, castagnoli, zeroPad[:pad])
		binary.LittleEndian.PutUint32(tail[pad:pad+4], crc)
		n += 4
	}
	if n == 0 {
		return nil
	}
	return bw.copyIn(tail[:n])
}

// keepAlive pings a quiet initiator with NOP-In (RFC 7143 11.19, TTT set
// so a NOP-Out must answer) and ends the session when a ping goes
// unanswered: any PDU received counts as an answer.
func (ss *session) keepAlive() {
	cfg := &ss.srv.cfg
	tick := time.NewTicker(cfg.NopInInterval / 2)
	defer tick.Stop()
	var pingSent int64 // when the outstanding ping left; 0 when none
	var ttt uint32
	for {
		select {
		case <-tick.C:
		case <-ss.ctx.Done():
			return
		}
		now := cfg.Now().UnixNano()
		heard := ss.lastHeard.Load()
		switch {
		case pingSent != 0 && heard >= pingSent:
			pingSent = 0
		case pingSent != 0 && now-pingSent > int64(cfg.NopInTimeout):
			ss.log.Info("iscsi: initiator did not answer NOP-In; closing session", "timeout", cfg.NopInTimeout)
			ss.close()
			return
		case pingSent == 0 && now-heard > int64(cfg.NopInInterval):
			p := newOut()
			p.bhs[0] = opNopIn
			p.bhs[1] = flagFinal
			put32(p.bhs[16:20], reservedTag)
			put32(p.bhs[20:24], nextTag(&ttt))
			p.sn = snCurrent
			pingSent = now
			ss.log.Debug("iscsi: NOP-In ping", "ttt", ttt)
			ss.send(p)
		}
	}
}
