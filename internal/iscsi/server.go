package iscsi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/volgw/volgw/internal/scsi"
)

// IQNPrefix is the prefix of every volgw target name: a volume's target
// is IQNPrefix + its TargetName, as on AWS Storage Gateway.
const IQNPrefix = "iqn.1997-05.com.amazon:"

// Config configures a Server. Zero fields take the defaults named in their
// comments.
type Config struct {
	// Logger receives connection and protocol events. Default: slog.Default().
	Logger *slog.Logger
	// MaxRecvDataSegmentLength is the largest data segment the target
	// accepts in one PDU, declared to every initiator. Default 256 KiB.
	MaxRecvDataSegmentLength uint32
	// MaxBurstLength and FirstBurstLength are the target's upper bounds in
	// negotiation (RFC 7143 13.13, 13.14). Defaults 16 MiB - 1 and 256 KiB.
	MaxBurstLength, FirstBurstLength uint32
	// MaxOutstandingR2T bounds the R2Ts in flight per command. Default 4.
	MaxOutstandingR2T uint32
	// MaxDataTransfer bounds the ExpectedDataTransferLength of a write; a
	// longer one fails with CHECK CONDITION before any buffer is taken.
	// Default 64 MiB.
	MaxDataTransfer uint32
	// MaxSessionBuffer bounds the Data-Out bytes one session may have
	// buffered for commands not yet finished; a write that would exceed it
	// is answered TASK SET FULL at once, and the initiator retries.
	// Default 512 MiB.
	MaxSessionBuffer int64
	// WriteBuffer bounds the Data-Out buffer space of the whole server:
	// the write data it solicits (R2T) and holds until the logical unit
	// returns. A write whose data must be solicited waits for space
	// before its R2T goes out; data the initiator sends unsolicited
	// (immediate data and the first burst, at most FirstBurstLength a
	// command) is always taken. One session holds at most half of it,
	// save one write of any size when it holds nothing. Default 32 MiB.
	// See writeBuffers.
	WriteBuffer int64
	// CommandWindow is how many commands an initiator may have queued
	// (MaxCmdSN - ExpCmdSN + 1 when idle). Default 128.
	CommandWindow uint32
	// LoginTimeout bounds the whole login phase of a connection. Default 30s.
	LoginTimeout time.Duration
	// NopInInterval, when set, makes the target ping an initiator that has
	// sent nothing for that long (a NOP-In asking for a reply), and drop
	// the connection if nothing arrives within NopInTimeout (default 30s)
	// of the ping. Zero leaves dead-peer detection to TCP keepalive.
	NopInInterval, NopInTimeout time.Duration
	// Now is the clock for NOP-In liveness. Default time.Now.
	Now func() time.Time
	// PortalGroupTag is the target portal group tag of every portal.
	// Default 1.
	PortalGroupTag uint16
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxRecvDataSegmentLength == 0 {
		c.MaxRecvDataSegmentLength = 256 << 10
	}
	c.MaxRecvDataSegmentLength = clamp(c.MaxRecvDataSegmentLength, 512, 1<<24-1)
	if c.MaxBurstLength == 0 {
		c.MaxBurstLength = 1<<24 - 1
	}
	c.MaxBurstLength = clamp(c.MaxBurstLength, 512, 1<<24-1)
	if c.FirstBurstLength == 0 {
		c.FirstBurstLength = 256 << 10
	}
	c.FirstBurstLength = clamp(c.FirstBurstLength, 512, c.MaxBurstLength)
	if c.MaxOutstandingR2T == 0 {
		c.MaxOutstandingR2T = 4
	}
	if c.MaxDataTransfer == 0 {
		c.MaxDataTransfer = 64 << 20
	}
	if c.MaxSessionBuffer == 0 {
		c.MaxSessionBuffer = 512 << 20
	}
	if c.WriteBuffer <= 0 {
		c.WriteBuffer = 32 << 20
	}
	if c.CommandWindow == 0 {
		c.CommandWindow = 128
	}
	if c.LoginTimeout == 0 {
		c.LoginTimeout = 30 * time.Second
	}
	if c.NopInTimeout == 0 {
		c.NopInTimeout = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PortalGroupTag == 0 {
		c.PortalGroupTag = 1
	}
}

func clamp(v, lo, hi uint32) uint32 { return max(lo, min(v, hi)) }

// TargetConfig describes one target.
type TargetConfig struct {
	// IQN is the target name, e.g. iqn.1997-05.com.amazon:myvolume.
	IQN string
	// LUNs executes every SCSI command sent to the target; it dispatches
	// by Command.LUN (scsi.NewLUNTable).
	LUNs scsi.LogicalUnit
	// CHAP lists the initiators allowed to log in with CHAP. Empty: the
	// target requires no authentication.
	CHAP []CHAPCredential
}

// Errors returned by the Server's methods.
var (
	ErrTargetExists   = errors.New("iscsi: target already exists")
	ErrTargetNotFound = errors.New("iscsi: target not found")
	ErrBadTarget      = errors.New("iscsi: invalid target configuration")
	ErrServerClosed   = errors.New("iscsi: server closed")
)

// Server is an iSCSI target server: it serves any number of targets on any
// number of listeners. It is safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger
	lim targetLimits
	// writeBufs holds the solicited Data-Out of every session.
	writeBufs *writeBuffers

	// mu guards every field below.
	mu      sync.Mutex
	targets map[string]*target
	// removed holds the names of targets RemoveTarget withdrew and no
	// AddTarget has brought back, so that a login to one is answered
	// "target removed" (RFC 7143 11.13.5, 0204h) rather than "not
	// found". Bounded by maxRemembered.
	removed   map[string]bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{} // every open connection, in login or not
	sessions  map[*session]struct{} // sessions in full feature phase
	nextTSIH  uint16
	closed    bool

	// connWG counts connection goroutines, so Close can wait for them.
	connWG sync.WaitGroup
}

// target is one configured target. Its fields are guarded by Server.mu.
type target struct {
	iqn  string
	lu   scsi.LogicalUnit
	chap []CHAPCredential
}

// NewServer returns a server with no targets and no listeners.
func NewServer(cfg Config) *Server {
	cfg.setDefaults()
	return &Server{
		cfg: cfg,
		log: cfg.Logger,
		lim: targetLimits{
			MaxRecvDataSegmentLength: cfg.MaxRecvDataSegmentLength,
			MaxBurstLength:           cfg.MaxBurstLength,
			FirstBurstLength:         cfg.FirstBurstLength,
			MaxOutstandingR2T:        cfg.MaxOutstandingR2T,
		},
		writeBufs: newWriteBuffers(cfg.WriteBuffer, cfg.Now),
		targets:   make(map[string]*target),
		removed:   make(map[string]bool),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
		sessions:  make(map[*session]struct{}),
	}
}

// AddTarget makes a target available to new logins. It fails with
// ErrTargetExists if the IQN is taken. Sessions still logged in to a
// target of the same name that RemoveTarget withdrew are closed, so that
// their initiators log in again to what the name now serves (a gateway
// started again after ShutdownGateway).
func (s *Server) AddTarget(tc TargetConfig) error {
	if err := validName(tc.IQN); err != nil {
		return err
	}
	if tc.LUNs == nil {
		return fmt.Errorf("%w: target %s has no logical units", ErrBadTarget, tc.IQN)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	if _, ok := s.targets[tc.IQN]; ok {
		return fmt.Errorf("%w: %s", ErrTargetExists, tc.IQN)
	}
	s.targets[tc.IQN] = &target{iqn: tc.IQN, lu: tc.LUNs, chap: copyCHAP(tc.CHAP)}
	delete(s.removed, tc.IQN)
	for ss := range s.sessions {
		if ss.tgt != nil && ss.tgt.iqn == tc.IQN && ss.withdrawn.Load() {
			// close only cancels and closes the connection: safe under
			// s.mu, and the session's teardown takes s.mu later.
			ss.close()
		}
	}
	return nil
}

// maxRemembered bounds Server.removed: beyond it the oldest knowledge is
// dropped wholesale, and a login to a long-removed target gets "not
// found", which initiators treat alike.
const maxRemembered = 4096

// wasRemoved reports whether iqn names a target RemoveTarget withdrew.
func (s *Server) wasRemoved(iqn string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removed[iqn]
}

// SetCHAP replaces the CHAP credentials of a target. When they change,
// the target's sessions are closed, as AWS Storage Gateway does ("all
// existing connections on the target are closed and initiators must
// reconnect"): a session authenticated under the old credentials must not
// outlive them. Its commands in flight finish first. Setting the same
// credentials again changes nothing.
func (s *Server) SetCHAP(iqn string, creds []CHAPCredential) error {
	s.mu.Lock()
	t, ok := s.targets[iqn]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrTargetNotFound, iqn)
	}
	if sameCHAP(t.chap, creds) {
		s.mu.Unlock()
		return nil
	}
	t.chap = copyCHAP(creds)
	victims := s.sessionsOfLocked(t, nil)
	s.mu.Unlock()
	for _, ss := range victims {
		ss.close()
	}
	for _, ss := range victims {
		ss.waitTasks()
	}
	return nil
}

// sessionsOfLocked returns the full-feature sessions of t but keep.
// Caller holds s.mu.
func (s *Server) sessionsOfLocked(t *target, keep *session) []*session {
	var out []*session
	for ss := range s.sessions {
		if ss.tgt == t && ss != keep {
			out = append(out, ss)
		}
	}
	return out
}

// sameCHAP reports whether two credential lists hold the same entries, in
// any order.
func sameCHAP(a, b []CHAPCredential) bool {
	if len(a) != len(b) {
		return false
	}
	byName := func(x, y CHAPCredential) int { return strings.Compare(x.InitiatorName, y.InitiatorName) }
	a, b = slices.SortedFunc(slices.Values(a), byName), slices.SortedFunc(slices.Values(b), byName)
	return slices.Equal(a, b)
}

func copyCHAP(c []CHAPCredential) []CHAPCredential {
	return append([]CHAPCredential(nil), c...)
}

// RemoveTarget withdraws a target: it is no longer discovered, and a
// login to it is refused with "target removed" (RFC 7143 11.13.5).
// Sessions logged in to it are not dropped, because an initiator that
// loses its connection retries the login for ever (libiscsi does, with
// the commands it had queued waiting): they stay, answering every
// command as a target without logical units does (LOGICAL UNIT NOT
// SUPPORTED), so an initiator's next I/O fails and it gives up, until it
// logs out or the connection ends. Commands in flight on the old units
// finish before RemoveTarget returns, so the caller may close the
// backend afterwards.
func (s *Server) RemoveTarget(iqn string) error {
	s.mu.Lock()
	t, ok := s.targets[iqn]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrTargetNotFound, iqn)
	}
	delete(s.targets, iqn)
	if len(s.removed) >= maxRemembered {
		clear(s.removed)
	}
	s.removed[iqn] = true
	victims := s.sessionsOfLocked(t, nil)
	s.mu.Unlock()
	for _, ss := range victims {
		ss.withdraw()
	}
	return nil
}

// Initiators returns the names of the initiators with a session in full
// feature phase on target iqn, sorted and without repeats (one initiator
// may hold several sessions). ListVolumeInitiators reports it.
func (s *Server) Initiators(iqn string) []string {
	s.mu.Lock()
	seen := make(map[string]bool)
	for ss := range s.sessions {
		if ss.tgt != nil && ss.tgt.iqn == iqn && !ss.withdrawn.Load() {
			seen[ss.initiatorName] = true
		}
	}
	s.mu.Unlock()
	return slices.Sorted(maps.Keys(seen))
}

// Serve accepts connections on ln until ctx is done, ln fails or the
// server is closed. It closes ln before returning. SendTargets answers
// with the address each connection arrived on as the portal.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	if localListener(ln) {
		s.log.Debug("iscsi: loopback listener", "addr", ln.Addr().String(), "tcp_congestion", localCongestion)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("iscsi: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[nc] = struct{}{}
		s.connWG.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.connWG.Done()
			s.serveConn(ctx, nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		}()
	}
}

// Close stops every listener and connection and waits for commands in
// flight to finish.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.connWG.Wait()
	return nil
}

// serveConn runs one connection: login, then full feature phase.
func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	log := s.log.With("remote", nc.RemoteAddr().String())
	br := bufio.NewReaderSize(nc, 64<<10)
	_ = nc.SetDeadline(time.Now().Add(s.cfg.LoginTimeout))
	ss, err := s.login(nc, br, log)
	if err != nil {
		log.Debug("iscsi: login failed", "err", err)
		return
	}
	_ = nc.SetDeadline(time.Time{})
	level := slog.LevelInfo
	if ss.discovery {
		level = slog.LevelDebug
	}
	ss.log.Log(ctx, level, "iscsi: session logged in", "tsih", ss.tsih,
		"header_digest", ss.cp.header, "data_digest", ss.cp.data,
		"max_burst", ss.sp.MaxBurstLength, "first_burst", ss.sp.FirstBurstLength,
		"initial_r2t", ss.sp.InitialR2T, "immediate_data", ss.sp.ImmediateData)
	ss.run(ctx)
	ss.log.Log(context.Background(), level, "iscsi: session ended", "tsih", ss.tsih)
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
	close(ss.ended)
}

// lookupTarget returns a target's current configuration.
func (s *Server) lookupTarget(iqn string) (t *target, chap []CHAPCredential, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok = s.targets[iqn]
	if !ok {
		return nil, nil, false
	}
	return t, t.chap, true
}

// targetNames lists the configured targets in a stable order.
func (s *Server) targetNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.targets))
	for n := range s.targets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// unregister forgets a session that failed before full feature phase.
func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
	close(ss.ended)
}

// closeTargetSessions closes every session of t but keep (a TARGET COLD
// RESET: keep closes itself once its TMF response is out).
func (s *Server) closeTargetSessions(t *target, keep *session) {
	s.mu.Lock()
	victims := s.sessionsOfLocked(t, keep)
	s.mu.Unlock()
	for _, ss := range victims {
		ss.close()
	}
}

// register admits a session to full feature phase. A normal session with
// the same initiator, ISID and target as a live one reinstates it: the old
// one is closed (RFC 7143 6.3.5).
func (s *Server) register(ss *session) (uint16, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrServerClosed
	}
	if ss.tgt != nil {
		if cur, ok := s.targets[ss.tgt.iqn]; !ok || cur != ss.tgt {
			s.mu.Unlock()
			return 0, ErrTargetNotFound
		}
	}
	var old []*session
	for o := range s.sessions {
		if !ss.discovery && !o.discovery && o.tgt == ss.tgt && o.isid == ss.isid && o.initiatorName == ss.initiatorName {
			old = append(old, o)
			delete(s.sessions, o)
		}
	}
	s.nextTSIH++
	if s.nextTSIH == 0 {
		s.nextTSIH = 1
	}
	tsih := s.nextTSIH
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	// The new session may not act for the nexus until the old one has
	// finished with it: a late NexusLost from the old one would release
	// what the new one reserves.
	for _, o := range old {
		o.close()
		<-o.ended
	}
	return tsih, nil
}

// validName checks an iSCSI name loosely (RFC 7143 4.2.7): iqn., eui. or
// naa. form, at most 223 bytes, no spaces or control characters.
func validName(n string) error {
	if len(n) == 0 || len(n) > 223 {
		return fmt.Errorf("%w: name length %d", ErrBadTarget, len(n))
	}
	if !strings.HasPrefix(n, "iqn.") && !strings.HasPrefix(n, "eui.") && !strings.HasPrefix(n, "naa.") {
		return fmt.Errorf("%w: %q is not an iqn., eui. or naa. name", ErrBadTarget, n)
	}
	for _, c := range n {
		if c <= ' ' || c == 0x7f || c == ',' {
			return fmt.Errorf("%w: %q has a forbidden character", ErrBadTarget, n)
		}
	}
	return nil
}
