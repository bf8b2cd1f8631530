package iscsi

import (
	"net"
	"syscall"
)

// localCongestion are the congestion controls a connection from this host
// is given, in order of preference (localTCP): neither paces. "reno" is
// built into every kernel and always allowed; "cubic" may need
// CAP_NET_ADMIN where the administrator did not allow it.
var localCongestion = [...]string{"cubic", "reno"}

// localTCP sets a pacing-free congestion control on nc when its initiator
// runs on this host (a loopback address, or the address the connection
// arrived on), and returns the one set, or "" when nc is left as it is.
//
// Why: there is no network between the two ends to share fairly, and a
// host set to BBR (net.ipv4.tcp_congestion_control = bbr) paces every
// Data-In burst to its estimate of a loopback "path", probes that path by
// dropping to four segments in flight every ten seconds, and, with round
// trips of microseconds and an initiator that reads in bursts, fires tail
// loss probes that resend 64 KiB segments the initiator already has (the
// host's TCPLossProbes and DSACK counters): on the bench machine a warm
// 1 MiB QD8 sequential read over loopback ran at 2.9 GB/s with BBR and
// 3.6 GB/s with cubic, at a tenth less CPU per byte in both processes
// (BENCHMARKS.md, "Warm reads"). Connections from other hosts keep the
// host's choice: there the network is what congestion control is for.
func localTCP(nc net.Conn) string {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return ""
	}
	remote, rok := tc.RemoteAddr().(*net.TCPAddr)
	local, lok := tc.LocalAddr().(*net.TCPAddr)
	if !rok || !lok || !(remote.IP.IsLoopback() || remote.IP.Equal(local.IP)) {
		return ""
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return ""
	}
	set := ""
	_ = rc.Control(func(fd uintptr) {
		for _, name := range localCongestion {
			// Best effort: a kernel without it, or a name not allowed
			// to this process, leaves the host's default.
			if syscall.SetsockoptString(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CONGESTION, name) == nil {
				set = name
				return
			}
		}
	})
	return set
}
