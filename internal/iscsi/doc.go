// Package iscsi is volgw's iSCSI target (RFC 7143): the wire between
// initiators and the SCSI logical units of package scsi.
//
// It owns TCP connections, login (operational parameter negotiation, CHAP
// one-way and mutual), discovery (SendTargets), command numbering
// (CmdSN/ExpCmdSN/MaxCmdSN, StatSN), Data-In, R2T and Data-Out with their
// sequence numbers, residual counts, immediate and unsolicited data,
// header and data digests (CRC32C), NOP-In/Out, task management and
// logout. It never interprets a CDB: every SCSI Command, with all its
// Data-Out gathered, goes to the target's scsi.LogicalUnit (normally a
// scsi.LUNTable), and its scsi.Response comes back as Data-In and status.
// It must not touch backends, volumes or the control plane.
//
// The API:
//
//	srv := iscsi.NewServer(iscsi.Config{Logger: log})
//	srv.AddTarget(iscsi.TargetConfig{IQN: iqn, LUNs: lunTable, CHAP: creds})
//	go srv.Serve(ctx, ln)        // any number of listeners
//	srv.SetCHAP(iqn, creds)      // closes its sessions; logins need the new credentials
//	srv.RemoveTarget(iqn)        // logins get "target removed"; its sessions fail every command
//	srv.Close()
//
// Naming: volgw serves one target per volume, named IQNPrefix +
// TargetName (iqn.1997-05.com.amazon:<TargetName>) as AWS Storage Gateway
// does, with
// the volume at the LunNumber the API reports (Command.LUN carries the
// decoded LUN number: peripheral and flat addressing; any other form has
// its top bit set and so matches no configured LUN).
//
// Command.Nexus is the session's I_T nexus, spelled
// "<initiator name>,i,0x<ISID in hex>,<target name>" (the iSCSI initiator
// port name, RFC 7143 4.2.7.1, then the target); package scsi derives
// TransportIDs from it, so the form is a contract. When a session ends,
// a LogicalUnit with a NexusLost(nexus string) method is told: on logout
// before the Logout Response is sent, and always before a session
// reinstating the same nexus is admitted.
//
// Sessions: one connection per session (MaxConnections=1) at
// ErrorRecoveryLevel 0. A new login with the same initiator name, ISID and
// target reinstates (closes) the old session. Each connection has one
// reader goroutine, which admits commands in CmdSN order and gathers their
// Data-Out straight into pooled buffers; worker goroutines, each executing
// one command at a time and kept for the next (as many as commands execute
// at once); and one writer goroutine that stamps StatSN/ExpCmdSN/MaxCmdSN
// and batches PDUs into writev calls, those of commands completing
// together into one. MaxCmdSN shrinks by the number of commands
// outstanding, which is the target's flow control. In steady state a
// command allocates nothing: tasks, R2T sequences, outgoing PDUs and
// Data-Out buffers are reused, and a task's "finished" channel is made
// only when a task management function or a logout waits for it.
//
// Buffers: Data-Out is gathered straight into buffers kept for reuse;
// reads of 64 KiB and more offer a pooled Command.DataInBuffer, which a
// unit that fills it (and returns it as DataIn) gets back only after the
// writer has sent it. Data-In of 16 KiB and more goes to the socket by
// writev without being copied, so a unit must not change DataIn after
// returning it.
//
// TCP: a listener on a loopback address is set to reno, a congestion
// control that does not pace, and its connections inherit it
// (tcp_linux.go): on a host set to BBR, BBR otherwise paces and resends
// Data-In over loopback. Other listeners keep the host's setting.
//
// Resource bounds: Data-Out is gathered into a buffer of the command's
// ExpectedDataTransferLength (at most Config.MaxDataTransfer). A write
// whose data must be solicited takes its buffer from the server's write
// buffer (Config.WriteBuffer, all sessions together) and sends its R2T
// only once the buffer is granted, in arrival order: the write data held
// at once stays within that bound however many initiators write, and
// with it the goroutines executing writes. No session holds more than
// half of that buffer (save one write of any size when it holds nothing),
// so an initiator that never sends the data it was asked for cannot
// starve the others: its further writes wait for its own buffers, and
// other sessions' writes pass them. What initiators send
// unsolicited (immediate data, the first burst) is always taken. A
// session's buffers together stay within Config.MaxSessionBuffer, beyond
// which a write is answered TASK SET FULL. An initiator that ignores MaxCmdSN by
// more than the window is disconnected. With Config.NopInInterval set, a
// quiet initiator is pinged with NOP-In and dropped if it does not answer.
//
// Errors at ERL 0: a header digest error or a malformed stream ends the
// connection; a Data-Out sequence or data digest error ends only its
// command, with CHECK CONDITION / ABORTED COMMAND; requests outside the
// command window are ignored, as RFC 7143 4.2.2.1 requires.
package iscsi
