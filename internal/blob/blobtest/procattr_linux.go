package blobtest

import "syscall"

// serverProcAttr puts a test's server in its own process group (cleanup
// reaches anything it spawns) and has the kernel SIGKILL it when the test
// process dies: a test binary killed by its timeout runs no cleanup, and a
// versitygw left behind kept growing a crash test's store to 53 GB.
func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
