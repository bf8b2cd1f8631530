package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// version is set at link time by `make build` (-ldflags "-X
// main.version=…", from git describe); without it buildVersion reads the
// build's own record.
var version = "dev"

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "volgw:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  volgw serve [--listen 127.0.0.1:8080] [--iscsi-listen 127.0.0.1:3260] [--data-dir ./volgw-data]
              [--region us-east-1] [--account-id 123456789012] [--store URL]
              [--cache-disk-size 10GiB] [--upload-buffer-disk-size 5GiB] [--log-level info]
              [--memory-limit 192MiB] [--pprof-listen 127.0.0.1:6060] [--recovery-point-retention 0]
              [--status-sample-interval 10s] [--gc-grace 5m] [--gc-interval 1m]
              [--encryption-keys FILE] [--encryption-default-key NAME] [--compress]
  volgw rebuild-catalog [--data-dir ./volgw-data] [--store URL] [--gateway-id sgw-…] [--encryption-keys FILE]
  volgw status [--endpoint http://127.0.0.1:8080] [--data-dir ./volgw-data] [--region us-east-1]
  volgw snapshot export [--endpoint URL] [--force] SNAPSHOT_ID FILE
  volgw snapshot import [--endpoint URL] [--description TEXT] [--parent SNAPSHOT_ID] FILE
  volgw recovery-points list --volume ARN|vol-… [--endpoint …] [--data-dir …] [--region …]
  volgw recovery-points snapshot --volume ARN|vol-… --at TIME|--seq N [--description TEXT] [--endpoint …] …
  volgw key new NAME          print a new keyring line for --encryption-keys
  volgw version
`

// run executes one volgw command. It returns when the command is done;
// for serve, when ctx is cancelled and the server has shut down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		opts, err := parseServeFlags(args[1:], stderr)
		if err != nil {
			return err
		}
		// The process's own setting, so made here rather than in start,
		// which tests run several of in one process.
		debug.SetMemoryLimit(opts.MemoryLimit)
		a, err := start(ctx, opts, stdout, getenv, productionParts)
		if err != nil {
			return err
		}
		<-ctx.Done()
		return a.close()
	case "rebuild-catalog":
		return rebuildCatalog(ctx, args[1:], stdout, stderr, getenv)
	case "status":
		return status(ctx, args[1:], stdout, stderr, getenv)
	case "snapshot":
		return snapshotCommand(ctx, args[1:], stdout, stderr, getenv)
	case "recovery-points":
		return recoveryPoints(ctx, args[1:], stdout, stderr, getenv)
	case "key":
		return keyCommand(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "volgw %s (%s %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "volgw: unknown command %q\n%s", args[0], usage)
	return errUsage
}

// buildVersion is the version this build reports (volgw version, the
// start-up log and DescribeGatewayInformation's SoftwareVersion): the
// link-time version when set; else the main module's version the go
// command recorded — the tag for `go install …@v1.2.3`, a pseudo-version
// with the commit (and +dirty) for `go build` in a git checkout; else
// "dev" with the VCS revision when one was stamped (a test binary has
// neither).
func buildVersion() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	return versionOf(info)
}

func versionOf(info *debug.BuildInfo) string {
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return version + "+" + rev
}
