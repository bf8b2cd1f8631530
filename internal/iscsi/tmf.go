package iscsi

// Task management functions (RFC 7143 11.5.1) and responses (11.6.1).
const (
	tmfAbortTask        = 1
	tmfAbortTaskSet     = 2
	tmfClearACA         = 3
	tmfClearTaskSet     = 4
	tmfLogicalUnitReset = 5
	tmfTargetWarmReset  = 6
	tmfTargetColdReset  = 7
	tmfTaskReassign     = 8

	tmfComplete           = 0
	tmfNoTask             = 1
	tmfNoLUN              = 2
	tmfReassignNotSupport = 4
	tmfNotSupported       = 5
	tmfRejected           = 255
)

// handleTMF performs a task management function. Tasks it ends send no
// response; the TMF response is queued only after each of them has
// stopped, so an aborted write can never land after the initiator has
// been told it is gone.
func (ss *session) handleTMF(h *header) error {
	if err := discardData(ss.br, h.dataLen(), ss.cp.digests); err != nil {
		return err
	}
	if ss.discovery {
		ss.sendReject(h, rejectProtocol)
		return nil
	}
	if !ss.admit(h) {
		return nil
	}
	fn := h.flags() & 0x7f
	itt := h.itt()
	lun := decodeLUN(h.lunField())
	// Tasks are ended, and their finished channels taken, under ss.mu in
	// the same critical section that finds them: once it is left, a task
	// that completes meanwhile may already be back in the pool serving
	// another command.
	unwatch := ss.watch()
	var waits []<-chan struct{} // closed as each task ended has stopped
	var ended []*task           // tasks gathering data, ended here
	response := byte(tmfComplete)
	reset := false
	resetLUN := false
	cold := false
	switch fn {
	case tmfAbortTask:
		ref := h.ttt() // Referenced Task Tag
		ss.mu.Lock()
		t := ss.tasks[ref]
		if t != nil && !t.completing && !t.aborted {
			waits, ended = ss.abortLocked(t, waits, ended)
		} else {
			response = tmfNoTask
		}
		ss.mu.Unlock()
	case tmfAbortTaskSet, tmfClearTaskSet:
		waits, ended = ss.abortWhere(func(t *task) bool { return t.cmd.LUN == lun })
	case tmfLogicalUnitReset:
		waits, ended = ss.abortWhere(func(t *task) bool { return t.cmd.LUN == lun })
		resetLUN = true
	case tmfTargetWarmReset:
		waits, ended = ss.abortWhere(func(*task) bool { return true })
		reset = true
	case tmfTargetColdReset:
		waits, ended = ss.abortWhere(func(*task) bool { return true })
		reset, cold = true, true
	case tmfClearACA:
		// NACA is never set (INQUIRY NormACA=0), so there is no ACA to clear.
		response = tmfNotSupported
	case tmfTaskReassign:
		response = tmfReassignNotSupport
	default:
		response = tmfRejected
	}
	for _, t := range ended {
		ss.releaseBuf(t)
		ss.outstanding.Add(-1)
		ss.finish(t)
	}
	ss.execWG.Add(1)
	go func() {
		defer ss.execWG.Done()
		defer unwatch()
		for _, ch := range waits {
			select {
			case <-ch:
			case <-ss.ctx.Done():
				return
			}
		}
		ss.luMu.RLock()
		switch {
		case reset:
			ss.lu.Reset(ss.nexus)
		case resetLUN:
			if lr, ok := ss.lu.(lunResetter); ok {
				if !lr.ResetLUN(lun, ss.nexus) {
					response = tmfNoLUN
				}
			} else {
				ss.lu.Reset(ss.nexus)
			}
		}
		ss.luMu.RUnlock()
		p := newOut()
		p.bhs[0] = opTMFResp
		p.bhs[1] = flagFinal
		p.bhs[2] = response
		put32(p.bhs[16:20], itt)
		p.sn = snAdvance
		p.closeAfter = cold
		ss.send(p)
		if cold {
			ss.srv.closeTargetSessions(ss.tgt, ss)
		}
	}()
	return nil
}

// lunResetter is implemented by a LUN table that can reset one of its
// logical units (scsi.LUNTable); without it a LOGICAL UNIT RESET resets
// the whole target's LogicalUnit.
type lunResetter interface {
	ResetLUN(lun uint64, nexus string) bool
}

// abortWhere aborts every pending task that matches (abortLocked).
func (ss *session) abortWhere(match func(*task) bool) (waits []<-chan struct{}, ended []*task) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, t := range ss.tasks {
		if !t.completing && !t.aborted && match(t) {
			waits, ended = ss.abortLocked(t, waits, ended)
		}
	}
	return waits, ended
}

// abortLocked marks t aborted, so that it sends no response, and appends
// the channel closed once it has stopped. A task still gathering data is
// ended by the caller, on the reader goroutine that owns its gathering
// state: it is appended to ended, out of session.tasks and its R2Ts
// forgotten, for the caller to release and finish. A task waiting for
// write buffer space is told to stop; its waiting goroutine ends it.
// Caller holds ss.mu and watches (session.watch).
func (ss *session) abortLocked(t *task, waits []<-chan struct{}, ended []*task) ([]<-chan struct{}, []*task) {
	t.aborted = true
	waits = append(waits, ss.finishedLocked(t))
	switch t.state {
	case taskWaiting:
		close(t.stopWait)
	case taskGathering:
		ss.dropR2TsLocked(t)
		delete(ss.tasks, t.itt)
		t.state = taskExecuting
		ended = append(ended, t)
	}
	return waits, ended
}
