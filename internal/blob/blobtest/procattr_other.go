//go:build !linux

package blobtest

import "syscall"

// serverProcAttr puts a test's server in its own process group (cleanup
// reaches anything it spawns); only Linux can also tie its life to the
// test process's.
func serverProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
