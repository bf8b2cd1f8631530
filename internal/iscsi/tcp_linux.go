package iscsi

import (
	"net"
	"syscall"
)

// localCongestion is the congestion control a connection from this host
// is given (localTCP): reno, built into every kernel and allowed to every
// process (the kernel never restricts it), and it does not pace. On the
// bench machine it read at least as fast as cubic (median 3.9 against
// 3.5 GB/s, seven paired rounds; why is not established), which an
// unprivileged process may not be allowed to pick anyway.
const localCongestion = "reno"

// localTCP sets localCongestion on nc when its initiator runs on this host
// (a loopback address, or the address the connection arrived on), and
// reports whether it did.
//
// Why: there is no network between the two ends to share fairly, and a
// host set to BBR (net.ipv4.tcp_congestion_control = bbr) paces every
// Data-In burst to its estimate of a loopback "path", probes that path by
// dropping to four segments in flight every ten seconds, and, with round
// trips of microseconds and an initiator that reads in bursts, fires tail
// loss probes that resend 64 KiB segments the initiator already has (the
// host's TCPLossProbes and DSACK counters). On the bench machine a warm
// 1 MiB QD8 sequential read over loopback ran at 2.9 GB/s with BBR and
// 3.9 GB/s with reno, with less CPU per byte in both processes
// (BENCHMARKS.md, "Warm reads"). Connections from other hosts keep the
// host's choice: there the network is what congestion control is for.
func localTCP(nc net.Conn) bool {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return false
	}
	remote, rok := tc.RemoteAddr().(*net.TCPAddr)
	local, lok := tc.LocalAddr().(*net.TCPAddr)
	if !rok || !lok || !(remote.IP.IsLoopback() || remote.IP.Equal(local.IP)) {
		return false
	}
	return setCongestion(tc)
}

// localListener sets localCongestion on ln when it listens on a loopback
// address, so that every connection it accepts starts with it (the kernel
// hands a listener's congestion control, set this way, to its children).
// Measured better than switching each connection after accept (localTCP,
// which is for listeners on other addresses, whose connections may still
// come from this host): switched, a connection has started under BBR,
// which may leave it paced (the kernel does not reset sk_pacing_status
// when the congestion control changes; not verified), and the bench's
// 4 KiB QD32 random read ran ~10 % slower than with BBR, where started
// under reno it ran as fast (BENCHMARKS.md, "Warm reads").
func localListener(ln net.Listener) bool {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return false
	}
	a, ok := tl.Addr().(*net.TCPAddr)
	if !ok || !a.IP.IsLoopback() {
		return false
	}
	return setCongestion(tl)
}

// setCongestion sets localCongestion on a TCP socket.
func setCongestion(s syscall.Conn) bool {
	rc, err := s.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptString(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CONGESTION, localCongestion)
	}); err != nil {
		return false
	}
	// Best effort: should the kernel refuse, the host's default stays.
	return serr == nil
}
