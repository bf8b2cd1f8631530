package iscsi

import (
	"net"
	"syscall"
)

// localCongestion is the congestion control of the connections a
// loopback listener accepts (localListener): reno, built into every kernel
// and allowed to every process (the kernel never restricts it), and it
// does not pace. On the bench machine it read at least as fast as cubic
// (median 3.9 against 3.5 GB/s, seven paired rounds; why is not
// established), which an unprivileged process may not be allowed to pick
// anyway.
const localCongestion = "reno"

// localListener sets localCongestion on ln when it listens on a loopback
// address, and reports whether it did. The kernel hands a listener's
// congestion control, set this way, to the connections it accepts, so
// they never start under the host's default.
//
// Why: on loopback there is no network between the two ends to share
// fairly, and a host set to BBR (net.ipv4.tcp_congestion_control = bbr)
// paces the Data-In to its model of a loopback "path" and, with round
// trips of microseconds against an initiator that reads in bursts,
// resends segments the initiator already has (seen: `ss` shows the
// connection paced and 1.5 % of its bytes resent; the host counts tail
// loss probes and DSACKs by the hundred thousand). On the bench machine a
// warm 1 MiB QD8 sequential read over loopback ran at 2.9 GB/s with BBR
// and 3.6 GB/s with cubic in one run, with less CPU per byte in both
// processes, and reno as fast as cubic (BENCHMARKS.md, "Warm reads").
//
// Only the listener: switching each connection from this host after
// accept (also those arriving on other addresses) cost the 4 KiB QD32
// random read ~10 % against BBR in the same bench, where connections that
// start under reno read as fast as under BBR; why is not established.
// Listeners on other addresses keep the host's choice: there the network
// is what congestion control is for.
func localListener(ln net.Listener) bool {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return false
	}
	a, ok := tl.Addr().(*net.TCPAddr)
	if !ok || !a.IP.IsLoopback() {
		return false
	}
	rc, err := tl.SyscallConn()
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
