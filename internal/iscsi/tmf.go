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
	var victims []*task
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
			t.aborted = true
			victims = append(victims, t)
		} else {
			response = tmfNoTask
		}
		ss.mu.Unlock()
	case tmfAbortTaskSet, tmfClearTaskSet:
		victims = ss.abortWhere(func(t *task) bool { return t.cmd.LUN == lun })
	case tmfLogicalUnitReset:
		victims = ss.abortWhere(func(t *task) bool { return t.cmd.LUN == lun })
		resetLUN = true
	case tmfTargetWarmReset:
		victims = ss.abortWhere(func(*task) bool { return true })
		reset = true
	case tmfTargetColdReset:
		victims = ss.abortWhere(func(*task) bool { return true })
		reset, cold = true, true
	case tmfClearACA:
		// NACA is never set (INQUIRY NormACA=0), so there is no ACA to clear.
		response = tmfNotSupported
	case tmfTaskReassign:
		response = tmfReassignNotSupport
	default:
		response = tmfRejected
	}
	// Tasks still gathering data are ended here, on the reader goroutine
	// that owns their gathering state; a task waiting for write buffer
	// space is told to stop, and its waiting goroutine ends it.
	for _, t := range victims {
		ss.mu.Lock()
		switch t.state {
		case taskWaiting:
			close(t.stopWait)
			ss.mu.Unlock()
		case taskGathering:
			ss.dropR2TsLocked(t)
			if ss.tasks[t.itt] == t {
				delete(ss.tasks, t.itt)
			}
			t.state = taskExecuting
			ss.mu.Unlock()
			ss.releaseBuf(t)
			ss.outstanding.Add(-1)
			close(t.finished)
		default:
			ss.mu.Unlock()
		}
	}
	ss.execWG.Add(1)
	go func() {
		defer ss.execWG.Done()
		for _, t := range victims {
			select {
			case <-t.finished:
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

// abortWhere marks every pending task that matches as aborted.
func (ss *session) abortWhere(match func(*task) bool) []*task {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []*task
	for _, t := range ss.tasks {
		if !t.completing && !t.aborted && match(t) {
			t.aborted = true
			out = append(out, t)
		}
	}
	return out
}
