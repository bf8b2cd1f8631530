package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitDirective returns the value of a directive of dist/systemd's unit,
// with its continuation lines joined.
func unitDirective(t *testing.T, unit, key string) string {
	t.Helper()
	var val string
	in := false
	for _, line := range strings.Split(unit, "\n") {
		switch {
		case strings.HasPrefix(line, key+"="):
			val, in = strings.TrimPrefix(line, key+"="), true
		case in:
			val += " " + strings.TrimSpace(line)
		default:
			continue
		}
		if !strings.HasSuffix(val, "\\") {
			return val
		}
		val = strings.TrimSuffix(val, "\\")
	}
	t.Fatalf("the unit has no %s", key)
	return ""
}

// TestSystemdUnit: dist/systemd/volgw.service starts `volgw serve` with
// flags it has (parsed as volgw parses them), and systemd itself finds
// nothing to say about the unit (systemd-analyze verify, with the binary
// built from this tree in place of /usr/local/bin/volgw).
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "dist", "systemd", "volgw.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	args := strings.Fields(unitDirective(t, unit, "ExecStart"))
	if len(args) < 2 || args[0] != "/usr/local/bin/volgw" || args[1] != "serve" {
		t.Fatalf("ExecStart runs %q, want /usr/local/bin/volgw serve …", args)
	}
	o, err := parseServeFlags(args[2:], io.Discard)
	if err != nil {
		t.Fatalf("volgw serve refuses the unit's flags %q: %v", args[2:], err)
	}
	if o.DataDir != "/var/lib/volgw" || !strings.Contains(unit, "StateDirectory=volgw\n") {
		t.Errorf("the data dir %q is not the unit's StateDirectory", o.DataDir)
	}
	if got := unitDirective(t, unit, "KillSignal"); got != "SIGTERM" {
		t.Errorf("KillSignal=%s: volgw stops cleanly on SIGTERM", got)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd)")
	}
	dir := t.TempDir()
	bin := buildTestBinary(t)
	path := filepath.Join(dir, "volgw.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/volgw", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(analyze, "verify", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	// An unknown directive is only a warning to systemd: any output fails.
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out.String())
	}
}
