package iscsi

import (
	"errors"
	"sync"
	"unsafe"

	"github.com/volgw/volgw/internal/scsi"
)

type taskState byte

const (
	taskGathering taskState = iota // waiting for Data-Out
	taskWaiting                    // unsolicited data in, waiting for write buffer space to solicit the rest
	taskExecuting                  // handed to the logical unit
)

// task is one SCSI command from admission to response.
type task struct {
	itt      uint32
	lunField [8]byte
	cmd      scsi.Command
	cdbBuf   [16]byte
	readLen  uint32 // expected Data-In length
	// state is written by the reader goroutine, and by a task's
	// bufferWait goroutine under session.mu while it is taskWaiting.
	state taskState

	// Guarded by session.mu.
	aborted    bool // a task management function ended the task
	completing bool // the response is being queued; too late to abort
	// finished, made only when someone waits for the task (a task
	// management function, a logout), is closed once the task will send
	// nothing more. See session.finishedLocked.
	finished chan struct{}
	// stopWait, closed by a task management function, ends a
	// taskWaiting task's wait for buffer space.
	stopWait chan struct{}

	// Data-Out gathering, touched only by the reader goroutine.
	buf []byte // EDTL bytes: from Server.writeBufs if fromWriteBufs, else the pool
	// fromWriteBufs: buf is solicited-data space, returned to
	// Server.writeBufs.
	fromWriteBufs bool
	// partial: buf holds only the unsolicited data; the full buffer must
	// be granted before any R2T.
	partial bool
	// counted: the EDTL is in session.buffered.
	counted     bool
	inBuf       []byte // offered as Command.DataInBuffer, from the pool
	received    uint32 // Data-Out bytes in place, immediate data included
	unsolNext   uint32 // offset the next unsolicited Data-Out must carry
	unsolEnd    uint32 // end of the unsolicited burst
	unsolDataSN uint32
	unsolDone   bool
	nextR2T     uint32 // offset the next R2T asks for
	r2tSN       uint32
	r2tsOut     uint32
}

// r2tSeq is one solicited Data-Out sequence.
type r2tSeq struct {
	t        *task
	ttt      uint32
	offset   uint32
	length   uint32
	received uint32
	dataSN   uint32
}

// Transport-level sense (fixed format, SPC-4 4.5.3), for failures the
// logical unit never sees.
const (
	senseIllegalRequest = 0x05
	senseAbortedCommand = 0x0b
)

func fixedSense(key, asc, ascq byte) []byte {
	s := make([]byte, 18)
	s[0] = 0x70
	s[2] = key
	s[7] = 10
	s[12] = asc
	s[13] = ascq
	return s
}

// handleCommand admits a SCSI Command PDU and starts gathering its data.
func (ss *session) handleCommand(h *header) error {
	n := h.dataLen()
	if ss.discovery {
		// Only text and logout belong to a discovery session.
		return ss.reject(h, rejectProtocol)
	}
	if !ss.admit(h) {
		return discardData(ss.br, n, ss.cp.digests)
	}
	if ss.outstanding.Add(1) > int32(2*ss.window) {
		return errors.New("iscsi: initiator exceeded the command window")
	}
	flags := h.flags()
	t := newTask()
	t.itt = h.itt()
	copy(t.lunField[:], h.lunField())
	edtl := h.edtl()
	t.cmd = scsi.Command{
		Nexus:                      ss.nexus,
		LUN:                        decodeLUN(t.lunField[:]),
		CDB:                        h.cdb(t.cdbBuf[:0]),
		ExpectedDataTransferLength: edtl,
		Read:                       flags&flagRead != 0,
		Write:                      flags&flagWrite != 0,
	}
	t.readLen = edtl
	if t.cmd.Read && t.cmd.Write {
		if l, ok := h.bidiReadLength(); ok {
			t.readLen = l
		}
	}

	ss.mu.Lock()
	_, dup := ss.tasks[t.itt]
	if !dup {
		ss.tasks[t.itt] = t
	}
	ss.mu.Unlock()
	if dup {
		ss.outstanding.Add(-1)
		taskPool.Put(t)
		return ss.reject(h, rejectInvalidField)
	}

	if !t.cmd.Write || edtl == 0 {
		if err := discardData(ss.br, n, ss.cp.digests); err != nil {
			return err
		}
		if t.cmd.Read && edtl >= minPooledDataIn && edtl <= ss.srv.cfg.MaxDataTransfer {
			// Large reads fill a pooled buffer: fresh megabytes per
			// command cost more in zeroing and page faults than the read.
			t.inBuf = getBuf(int(edtl))
			t.cmd.DataInBuffer = t.inBuf
		}
		ss.startExecution(t)
		return nil
	}
	if edtl > ss.srv.cfg.MaxDataTransfer {
		if err := discardData(ss.br, n, ss.cp.digests); err != nil {
			return err
		}
		ss.failTask(t, fixedSense(senseIllegalRequest, 0x24, 0)) // INVALID FIELD IN CDB
		return nil
	}
	if ss.buffered.Add(int64(edtl)) > ss.srv.cfg.MaxSessionBuffer {
		ss.buffered.Add(-int64(edtl))
		if err := discardData(ss.br, n, ss.cp.digests); err != nil {
			return err
		}
		ss.failTask(t, nil)
		return nil
	}
	t.counted = true
	if uint32(n) > edtl {
		// Immediate data beyond EDTL: a protocol error by the initiator.
		if err := discardData(ss.br, n, ss.cp.digests); err != nil {
			return err
		}
		ss.failTask(t, fixedSense(senseAbortedCommand, 0x0c, 0x0c)) // UNEXPECTED UNSOLICITED DATA
		return nil
	}
	imm := uint32(n)
	t.unsolEnd, t.unsolDone = imm, true
	if !h.final() && !ss.sp.InitialR2T {
		t.unsolEnd = max(imm, min(ss.sp.FirstBurstLength, edtl))
		t.unsolDone = t.unsolEnd == imm
	}
	switch {
	case t.unsolEnd == edtl:
		// All of it comes unsolicited: the target cannot hold it back, and
		// the command window bounds how much (FirstBurstLength each).
		t.buf = getBuf(int(edtl))
	default:
		if b := ss.srv.writeBufs.tryGet(&ss.wbAcct, int(edtl)); b != nil {
			t.buf, t.fromWriteBufs = b, true
			break
		}
		// No space for the data to solicit: take what comes unsolicited
		// into a buffer of its own; advance waits for the space.
		t.partial = true
		if t.unsolEnd > 0 {
			t.buf = getBuf(int(t.unsolEnd))
		}
	}
	if imm > 0 {
		if err := readData(ss.br, t.buf[:imm], ss.cp.digests); err != nil {
			if errors.Is(err, errDataDigest) {
				ss.sendReject(h, rejectDataDigest)
				ss.failTask(t, fixedSense(senseAbortedCommand, 0x47, 0x05)) // PROTOCOL SERVICE CRC ERROR
				return nil
			}
			return err
		}
	}
	t.received = imm
	t.unsolNext = imm
	t.nextR2T = t.unsolEnd
	ss.advance(t)
	return nil
}

// advance starts the task when all its data is in, or asks for more.
func (ss *session) advance(t *task) {
	edtl := t.cmd.ExpectedDataTransferLength
	if t.received == edtl {
		t.cmd.DataOut = t.buf[:edtl]
		ss.startExecution(t)
		return
	}
	if t.partial {
		if t.unsolDone {
			ss.awaitBuffer(t)
		}
		return
	}
	ss.mu.Lock()
	ss.solicitLocked(t)
	ss.mu.Unlock()
}

// awaitBuffer asks Server.writeBufs for the full buffer of a task whose
// unsolicited data is in, and solicits the rest once it is granted: at
// once if the space is free, else from a goroutine of its own, the task
// taskWaiting meanwhile. Reader goroutine only.
func (ss *session) awaitBuffer(t *task) {
	w := ss.srv.writeBufs.wait(&ss.wbAcct, int(t.cmd.ExpectedDataTransferLength))
	select {
	case b := <-w.ch:
		ss.mu.Lock()
		ss.installLocked(t, b)
		ss.mu.Unlock()
		return
	default:
	}
	ss.mu.Lock()
	t.state = taskWaiting
	t.stopWait = make(chan struct{})
	ss.mu.Unlock()
	ss.execWG.Add(1)
	go func() {
		defer ss.execWG.Done()
		b := ss.srv.writeBufs.await(ss.ctx, w, t.stopWait)
		ss.mu.Lock()
		if b != nil && !t.aborted && ss.ctx.Err() == nil {
			t.state = taskGathering
			ss.installLocked(t, b)
			ss.mu.Unlock()
			return
		}
		// Aborted (a task management function waits for finished), or
		// the session is ending: the task ends here, without a response.
		ss.srv.writeBufs.put(&ss.wbAcct, b)
		if ss.tasks[t.itt] == t {
			delete(ss.tasks, t.itt)
		}
		t.completing = true
		t.state = taskExecuting
		ss.mu.Unlock()
		ss.releaseBuf(t)
		ss.outstanding.Add(-1)
		ss.finish(t)
	}()
}

// installLocked moves a partial task's unsolicited data into its granted
// buffer and solicits the rest. Caller holds ss.mu.
func (ss *session) installLocked(t *task, b []byte) {
	copy(b, t.buf[:t.received])
	putBuf(t.buf)
	t.buf, t.fromWriteBufs, t.partial = b, true, false
	ss.solicitLocked(t)
}

// solicitLocked sends the R2Ts a gathering task may have outstanding.
// Caller holds ss.mu, which orders it with the reader's handling of the
// Data-Out it solicits when a bufferWait goroutine sends it.
func (ss *session) solicitLocked(t *task) {
	edtl := t.cmd.ExpectedDataTransferLength
	for t.r2tsOut < ss.sp.MaxOutstandingR2T && t.nextR2T < edtl {
		length := min(ss.sp.MaxBurstLength, edtl-t.nextR2T)
		ttt := ss.nextTTT
		ss.nextTTT++
		if ss.nextTTT == reservedTag {
			ss.nextTTT = 1
		}
		seq := ss.newSeqLocked()
		*seq = r2tSeq{t: t, ttt: ttt, offset: t.nextR2T, length: length}
		ss.r2ts[ttt] = seq
		p := newOut()
		p.bhs[0] = opR2T
		p.bhs[1] = flagFinal
		copy(p.bhs[8:16], t.lunField[:])
		put32(p.bhs[16:20], t.itt)
		put32(p.bhs[20:24], ttt)
		put32(p.bhs[36:40], t.r2tSN)
		put32(p.bhs[40:44], seq.offset)
		put32(p.bhs[44:48], length)
		p.sn = snCurrent
		ss.send(p)
		t.r2tSN++
		t.r2tsOut++
		t.nextR2T += length
	}
}

// handleDataOut places one Data-Out PDU's data in its task's buffer
// (RFC 7143 11.7). Data for a task that no longer exists is dropped; a
// sequence error at ERL 0 ends the task with CHECK CONDITION.
func (ss *session) handleDataOut(h *header) error {
	n := uint32(h.dataLen())
	itt, ttt := h.itt(), h.ttt()
	var t *task
	var seq *r2tSeq
	gathering := false
	ss.mu.Lock()
	if ttt == reservedTag {
		t = ss.tasks[itt]
	} else if seq = ss.r2ts[ttt]; seq != nil && seq.t.itt == itt {
		t = seq.t
	}
	if t != nil {
		gathering = t.state == taskGathering && t.buf != nil
	}
	ss.mu.Unlock()
	if !gathering {
		return discardData(ss.br, int(n), ss.cp.digests)
	}
	off := h.bufferOffset()
	var wantOff, wantSN, end uint32
	if seq == nil {
		wantOff, wantSN, end = t.unsolNext, t.unsolDataSN, t.unsolEnd
		if t.unsolDone {
			end = wantOff // no unsolicited data may come
		}
	} else {
		wantOff, wantSN, end = seq.offset+seq.received, seq.dataSN, seq.offset+seq.length
	}
	if h.dataSN() != wantSN || off != wantOff || uint64(off)+uint64(n) > uint64(end) {
		ss.log.Debug("iscsi: Data-Out out of sequence", "itt", itt, "datasn", h.dataSN(), "want_datasn", wantSN, "offset", off, "want_offset", wantOff, "len", n)
		if err := discardData(ss.br, int(n), ss.cp.digests); err != nil {
			return err
		}
		ss.failTask(t, fixedSense(senseAbortedCommand, 0x4b, 0x00)) // DATA PHASE ERROR
		return nil
	}
	if err := readData(ss.br, t.buf[off:off+n], ss.cp.digests); err != nil {
		if errors.Is(err, errDataDigest) {
			ss.sendReject(h, rejectDataDigest)
			ss.failTask(t, fixedSense(senseAbortedCommand, 0x47, 0x05))
			return nil
		}
		return err
	}
	t.received += n
	if seq == nil {
		t.unsolNext += n
		t.unsolDataSN++
		if h.final() || t.unsolNext == t.unsolEnd {
			t.unsolDone = true
			if t.unsolNext != t.unsolEnd {
				// NOT ENOUGH UNSOLICITED DATA (RFC 7143 7.1.4? 11.4.7.2).
				ss.failTask(t, fixedSense(senseAbortedCommand, 0x0c, 0x0d))
				return nil
			}
		}
	} else {
		seq.received += n
		seq.dataSN++
		if h.final() || seq.received == seq.length {
			if seq.received != seq.length {
				ss.failTask(t, fixedSense(senseAbortedCommand, 0x4b, 0x00))
				return nil
			}
			ss.mu.Lock()
			delete(ss.r2ts, seq.ttt)
			ss.freeSeqLocked(seq)
			ss.mu.Unlock()
			t.r2tsOut--
		}
	}
	if t.unsolDone || t.received == t.cmd.ExpectedDataTransferLength {
		ss.advance(t)
	}
	return nil
}

// dropR2Ts forgets a task's outstanding R2Ts. Caller holds ss.mu.
func (ss *session) dropR2TsLocked(t *task) {
	if t.r2tsOut == 0 {
		return
	}
	for ttt, seq := range ss.r2ts {
		if seq.t == t {
			delete(ss.r2ts, ttt)
			ss.freeSeqLocked(seq)
		}
	}
	t.r2tsOut = 0
}

// newSeqLocked returns an R2T sequence from the session's free list, or a
// new one. Caller holds ss.mu.
func (ss *session) newSeqLocked() *r2tSeq {
	if n := len(ss.freeSeqs); n > 0 {
		seq := ss.freeSeqs[n-1]
		ss.freeSeqs = ss.freeSeqs[:n-1]
		return seq
	}
	return new(r2tSeq)
}

// freeSeqLocked keeps a finished R2T sequence, out of session.r2ts, for
// reuse. Caller holds ss.mu.
func (ss *session) freeSeqLocked(seq *r2tSeq) {
	if len(ss.freeSeqs) < maxFreeSeqs {
		*seq = r2tSeq{}
		ss.freeSeqs = append(ss.freeSeqs, seq)
	}
}

// maxFreeSeqs bounds the R2T sequences a session keeps for reuse.
const maxFreeSeqs = 256

// minPooledDataIn is the read size from which Data-In buffers are pooled.
const minPooledDataIn = 64 << 10

// taskPool keeps tasks for reuse: a steady command load allocates none.
var taskPool = sync.Pool{New: func() any { return new(task) }}

// newTask returns a zeroed task.
func newTask() *task {
	t := taskPool.Get().(*task)
	*t = task{}
	return t
}

// finish ends t's life: whoever waits for it (finishedLocked) is told,
// and t goes back to the pool. Nothing may use t after; it must be out of
// session.tasks and session.r2ts already.
func (ss *session) finish(t *task) {
	if ss.watchers.Load() > 0 {
		ss.mu.Lock()
		if t.finished != nil {
			close(t.finished)
		}
		ss.mu.Unlock()
	}
	t.cmd = scsi.Command{} // no references into buffers from the pool
	t.buf, t.inBuf, t.finished, t.stopWait = nil, nil, nil, nil
	taskPool.Put(t)
}

// finishedLocked returns a channel closed once t has finished. t must be
// in session.tasks, which no finished task is; the caller holds ss.mu and
// has counted itself in session.watchers (watch) since before taking it,
// so that finish, which looks at the channel only when someone watches,
// cannot miss it.
func (ss *session) finishedLocked(t *task) <-chan struct{} {
	if t.finished == nil {
		t.finished = make(chan struct{})
	}
	return t.finished
}

// watch counts the caller among those that wait for tasks to finish
// (finishedLocked) until the returned function is called.
func (ss *session) watch() (unwatch func()) {
	ss.watchers.Add(1)
	return func() { ss.watchers.Add(-1) }
}

// statusTaskSetFull (SAM-5 5.3) asks the initiator to retry later.
const statusTaskSetFull = 0x28

// releaseBuf returns a task's Data-Out buffer to the pool and the
// session's budget.
func (ss *session) releaseBuf(t *task) {
	if t.counted {
		ss.buffered.Add(-int64(t.cmd.ExpectedDataTransferLength))
		t.counted = false
	}
	if t.buf == nil {
		return
	}
	if t.fromWriteBufs {
		ss.srv.writeBufs.put(&ss.wbAcct, t.buf)
	} else {
		putBuf(t.buf)
	}
	t.buf, t.fromWriteBufs = nil, false
	t.cmd.DataOut = nil
}

// failTask ends a task that is still gathering data with CHECK CONDITION
// and sense, or with TASK SET FULL when sense is nil. Reader goroutine only.
func (ss *session) failTask(t *task, sense []byte) {
	ss.mu.Lock()
	ss.dropR2TsLocked(t)
	aborted := t.aborted
	if ss.tasks[t.itt] == t {
		delete(ss.tasks, t.itt)
	}
	t.completing = true
	ss.mu.Unlock()
	ss.releaseBuf(t)
	t.state = taskExecuting // no more Data-Out is accepted
	// Free the command slot before the response is queued, so that the
	// MaxCmdSN it carries already counts it: a response that left with a
	// full window could be the last one, and the initiator would wait.
	ss.outstanding.Add(-1)
	if !aborted {
		r := scsi.Response{Status: scsi.StatusCheckCondition, Sense: sense}
		if sense == nil {
			r.Status = statusTaskSetFull
		}
		ss.sendResponse(t, r, 0, 0, t.r2tSN)
	}
	ss.finish(t)
}

// startExecution hands a task with all its data to the logical unit.
func (ss *session) startExecution(t *task) {
	t.state = taskExecuting
	if t.r2tsOut > 0 {
		ss.mu.Lock()
		ss.dropR2TsLocked(t)
		ss.mu.Unlock()
	}
	ss.dispatch(t)
}

// execute runs one task on a worker goroutine.
func (ss *session) execute(t *task) {
	ss.luMu.RLock()
	resp := ss.lu.Execute(ss.ctx, &t.cmd)
	ss.luMu.RUnlock()
	// The logical unit has returned; it keeps no reference to DataOut.
	ss.releaseBuf(t)
	ss.mu.Lock()
	aborted := t.aborted
	t.completing = true
	if ss.tasks[t.itt] == t {
		delete(ss.tasks, t.itt)
	}
	ss.mu.Unlock()
	ss.outstanding.Add(-1) // before the response: see failTask
	// recycle is the pooled buffer the response's data lives in, if any:
	// it goes back to the pool once the writer has sent it.
	var recycle []byte
	if t.inBuf != nil {
		switch {
		case len(resp.DataIn) > 0 && unsafe.SliceData(resp.DataIn) == unsafe.SliceData(t.inBuf) && !aborted:
			recycle = t.inBuf
		case overlaps(resp.DataIn, t.inBuf):
			// Data from inside our buffer but not at its start: let the
			// garbage collector have it rather than reuse it under the
			// data.
		default:
			putBuf(t.inBuf)
		}
		t.inBuf, t.cmd.DataInBuffer = nil, nil
	}
	// No longer counted as about to respond: the writer, should it find
	// its queue empty now, need not wait for this response (QD1).
	ss.executing.Add(-1)
	if !aborted {
		ss.respond(t, resp, recycle)
	}
	ss.finish(t)
}

// respond sends the Data-In and status of a completed command, with the
// residual counts of RFC 7143 11.4.5.
func (ss *session) respond(t *task, r scsi.Response, recycle []byte) {
	var resFlags byte
	var residual uint32
	data := r.DataIn
	switch {
	case t.cmd.Read:
		limit := t.readLen
		if uint64(len(data)) > uint64(limit) {
			resFlags, residual = flagOverflow, uint32(len(data))-limit
			data = data[:limit]
		} else if uint32(len(data)) < limit {
			resFlags, residual = flagUnderflow, limit-uint32(len(data))
		}
	case t.cmd.Write:
		data = nil
		switch d := r.DataOutResidual; {
		case d > 0 && d <= int64(t.cmd.ExpectedDataTransferLength):
			resFlags, residual = flagUnderflow, uint32(d)
		case d < 0 && d >= -(1<<32-1):
			resFlags, residual = flagOverflow, uint32(-d)
		}
	default:
		// A command without a data direction sends no data; what it would
		// have returned counts as overflow.
		if len(data) > 0 {
			resFlags, residual = flagOverflow, uint32(len(data))
		} else if t.cmd.ExpectedDataTransferLength > 0 {
			resFlags, residual = flagUnderflow, t.cmd.ExpectedDataTransferLength
		}
		data = nil
	}
	if t.cmd.Read && t.cmd.Write {
		// Bidirectional: the read residual goes in the Bidi fields.
		resFlags = resFlags << 3
	}
	if len(data) == 0 {
		putBuf(recycle)
		ss.sendResponse(t, r, resFlags, residual, t.r2tSN)
		return
	}
	p := newOut()
	p.recycle = recycle
	p.dataIn = true
	p.bhs[0] = opDataIn
	copy(p.bhs[8:16], t.lunField[:])
	put32(p.bhs[16:20], t.itt)
	put32(p.bhs[20:24], reservedTag)
	p.data = data
	p.seg = ss.sendLimit.Load()
	p.burst = ss.sp.MaxBurstLength
	p.withStatus = len(r.Sense) == 0 && !(t.cmd.Read && t.cmd.Write)
	p.status = r.Status
	p.resFlags = resFlags
	p.residual = residual
	withStatus, pdus := p.withStatus, dataInPDUs(uint32(len(data)), p.seg, p.burst)
	ss.send(p) // p belongs to the writer from here on
	if !withStatus {
		ss.sendResponse(t, r, resFlags, residual, pdus)
	}
}

// sendResponse sends a SCSI Response PDU.
// expDataSN is the number of Data-In PDUs sent for a read, or of R2Ts
// for a write.
func (ss *session) sendResponse(t *task, r scsi.Response, resFlags byte, residual, expDataSN uint32) {
	p := newOut()
	p.bhs[0] = opSCSIResp
	p.bhs[1] = flagFinal | resFlags
	p.bhs[2] = 0 // command completed at target
	p.bhs[3] = r.Status
	put32(p.bhs[16:20], t.itt)
	if resFlags&(flagOverflow|flagUnderflow) != 0 {
		put32(p.bhs[44:48], residual)
	} else if resFlags != 0 {
		put32(p.bhs[40:44], residual)
	}
	if len(r.Sense) > 0 {
		p.own = make([]byte, 2+len(r.Sense))
		put16(p.own, uint16(len(r.Sense)))
		copy(p.own[2:], r.Sense)
		p.data = p.own
	}
	put32(p.bhs[36:40], expDataSN)
	p.sn = snAdvance
	ss.send(p)
}

// dataInPDUs is how many Data-In PDUs writePDU uses for total bytes: each
// burst of at most burst bytes is cut into PDUs of at most seg bytes.
func dataInPDUs(total, seg, burst uint32) uint32 {
	full := total / burst
	perBurst := (burst + seg - 1) / seg
	rest := total % burst
	return full*perBurst + (rest+seg-1)/seg
}

// overlaps reports whether a and b share any memory.
func overlaps(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, b0 := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return a0 < b0+uintptr(len(b)) && b0 < a0+uintptr(len(a))
}
