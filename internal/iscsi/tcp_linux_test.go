package iscsi

import (
	"net"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// congestionOf reads a TCP connection's congestion control.
func congestionOf(t *testing.T, c net.Conn) string {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		name, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return name
}

// TestLocalListenerCongestion: a listener on a loopback address gets
// localCongestion and hands it to the connections it accepts, which so
// never start under the host's default.
func TestLocalListenerCongestion(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !localListener(ln) {
		t.Fatalf("localListener did not set %s on a loopback listener", localCongestion)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer server.Close()
	if got := congestionOf(t, server); got != localCongestion {
		t.Fatalf("accepted connection runs %q, want %q inherited from the listener", got, localCongestion)
	}
	// The initiator's end is the initiator's business.
	t.Logf("target end %s, initiator end %s (host default)", localCongestion, congestionOf(t, client))

	// Anything but TCP is left alone.
	ul, err := net.Listen("unix", filepath.Join(t.TempDir(), "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	if localListener(ul) {
		t.Fatal("localListener set something on a unix listener")
	}
}
