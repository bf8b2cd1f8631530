package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/storeurl"
	"github.com/volgw/volgw/internal/cdpapi"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/ebsapi"
	"github.com/volgw/volgw/internal/ec2api"
	"github.com/volgw/volgw/internal/scsi"
	"github.com/volgw/volgw/internal/sgwapi"
	"github.com/volgw/volgw/internal/statuspage"
)

// app is a running volgw serve: every component it opened, in the order it
// opened them, so that close undoes them in reverse.
type app struct {
	log       *slog.Logger
	apiLn     net.Listener
	iscsiLn   net.Listener
	pprofLn   net.Listener // nil unless --pprof-listen
	httpSrv   *http.Server
	creds     apiCredentials
	closers   []func() error // in opening order; close runs them backwards
	serveDone chan struct{}  // closed when the HTTP server has stopped

	closeOnce sync.Once
	closeErr  error
}

// APIAddr is the address the AWS API listens on.
func (a *app) APIAddr() string { return a.apiLn.Addr().String() }

// PprofAddr is the address of the profiling endpoint ("" when off).
func (a *app) PprofAddr() string {
	if a.pprofLn == nil {
		return ""
	}
	return a.pprofLn.Addr().String()
}

// ISCSIAddr is the address the iSCSI target listens on.
func (a *app) ISCSIAddr() string { return a.iscsiLn.Addr().String() }

// openedEngine is the block engine as main wires it: the control plane's
// VolumeEngine, plus each volume as an iSCSI backend.
type openedEngine struct {
	Engine  control.VolumeEngine
	Volumes func(volumeID string) (scsi.Backend, error)
	Close   func() error
	// Metrics, if set, is registered with /metrics.
	Metrics prometheus.Collector
}

// exporter is the iSCSI side of the control plane.
type exporter interface {
	control.TargetExporter
	Close() error
}

// parts are the constructors of the engine and the iSCSI exporter; main
// passes productionParts, tests pass the same unless they say otherwise.
type parts struct {
	openEngine  func(ctx context.Context, eo engineOptions, store blob.Store, log *slog.Logger) (openedEngine, error)
	newExporter func(ctx context.Context, dataDir string, ln net.Listener, volumes func(string) (scsi.Backend, error), writeBuffer int64, log *slog.Logger) (exporter, error)
}

// start opens everything `volgw serve` runs, binds both listeners and
// starts serving. On error, whatever was opened is closed again.
func start(ctx context.Context, o serveOptions, stdout io.Writer, getenv func(string) string, p parts) (a *app, err error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.LogLevel}))
	// opened is closed again if start fails; the error returns set a to
	// nil, so the deferred cleanup must not use a.
	opened := &app{log: log, serveDone: make(chan struct{})}
	a = opened
	defer func() {
		if err != nil {
			if cerr := opened.closeAll(); cerr != nil {
				log.Warn("cleanup after failed start", "err", cerr)
			}
			a = nil
		}
	}()

	// Absolute, so that the disk paths ListLocalDisks reports and the
	// default store URL do not depend on the working directory.
	if o.DataDir, err = filepath.Abs(o.DataDir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	// The catalog first: it takes the data dir's lock, and it must judge
	// the data dir before anything (credentials) is created in it.
	db, err := openCatalog(o.DataDir, recoveryArgs(o.Store, o.EncryptionKeys))
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, db.Close)
	if a.creds, err = loadCredentials(o.DataDir, getenv); err != nil {
		return nil, err
	}

	storeURL := o.Store
	if storeURL == "" {
		storeURL = "file://" + filepath.Join(o.DataDir, "store")
	}
	store, err := storeurl.OpenEnv(ctx, storeURL, getenv)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", storeURL, err)
	}
	// Every object sent or fetched passes the bandwidth limits (bandwidth.go).
	limits := newStoreLimits()
	store = limits.wrap(store)
	// The keyring before the catalog's copy: the default key seals it too.
	keys, err := loadKeyring(o, getenv, log)
	if err != nil {
		return nil, err
	}
	cat, err := mirrorCatalog(ctx, db, store, keys, a.creds, o, log)
	if err != nil {
		return nil, err
	}

	if p.openEngine == nil || p.newExporter == nil {
		return nil, errors.New("this build has no block engine or iSCSI target wired in")
	}
	engine, err := p.openEngine(ctx, engineOptions{DataDir: o.DataDir, RecoveryPointRetention: o.RecoveryPointRetention,
		GCGrace: o.GCGrace, GCInterval: o.GCInterval, Keys: keys, Compress: o.Compress, WholeBlocks: o.WholeBlocks}, store, log)
	if err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	a.closers = append(a.closers, engine.Close)

	if a.iscsiLn, err = net.Listen("tcp", o.ISCSIListen); err != nil {
		return nil, fmt.Errorf("iSCSI listener: %w", err)
	}
	a.closers = append(a.closers, ignoreClosed(a.iscsiLn.Close))
	iscsiIP, iscsiPort, err := advertisedAddress(a.iscsiLn.Addr())
	if err != nil {
		return nil, err
	}
	exp, err := p.newExporter(ctx, o.DataDir, a.iscsiLn, engine.Volumes, o.ISCSIWriteBuffer, log)
	if err != nil {
		return nil, fmt.Errorf("start iSCSI target: %w", err)
	}
	a.closers = append(a.closers, exp.Close)

	svc, err := control.New(control.Config{
		Catalog: cat, Engine: engine.Engine, Exporter: exp, Logger: log,
		Region: o.Region, Account: o.AccountID,
		ISCSIAddress: iscsiIP, ISCSIPort: iscsiPort,
		DiskDir:       filepath.Join(o.DataDir, "disks"),
		CacheDiskSize: o.CacheDiskSize, UploadBufferDiskSize: o.UploadBufferDiskSize,
		SoftwareVersion: buildVersion(), Bandwidth: limits,
		Keys: keys,
	})
	if err != nil {
		return nil, err
	}
	if err := svc.Start(ctx); err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	// Snapshot schedules: closed (stopped) before the exporter and the
	// engine, since closers run in reverse.
	schedCtx, stopSchedules := context.WithCancel(context.Background())
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		runSnapshotSchedules(schedCtx, svc, time.Minute, log)
	}()
	a.closers = append(a.closers, func() error { stopSchedules(); <-schedDone; return nil })
	maintCtx, stopMaint := context.WithCancel(context.Background())
	maintDone := make(chan struct{})
	go func() { defer close(maintDone); runMaintenance(maintCtx, svc, time.Minute, log) }()
	a.closers = append(a.closers, func() error { stopMaint(); <-maintDone; return nil })
	bwCtx, stopBW := context.WithCancel(context.Background())
	bwDone := make(chan struct{})
	go func() { defer close(bwDone); runBandwidthSchedule(bwCtx, svc, log) }()
	a.closers = append(a.closers, func() error { stopBW(); <-bwDone; return nil })

	model, err := sgwapi.LoadModel()
	if err != nil {
		return nil, err
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "volgw_api_requests_total",
		Help: "API requests answered, by protocol, operation, HTTP status and error type."},
		[]string{"protocol", "operation", "status", "error"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "volgw_api_request_duration_seconds",
		Help: "Time to answer an API request.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)},
		[]string{"protocol", "operation"})
	registry.MustRegister(requests, latency)
	registry.MustRegister(limits.collectors()...)
	if m, ok := exp.(interface{ collectors() []prometheus.Collector }); ok {
		registry.MustRegister(m.collectors()...)
	}
	if engine.Metrics != nil {
		registry.MustRegister(engine.Metrics)
	}
	observe := func(r awsproto.RequestRecord) {
		requests.WithLabelValues(r.Protocol, r.Operation, strconv.Itoa(r.Status), r.ErrorType).Inc()
		latency.WithLabelValues(r.Protocol, r.Operation).Observe(r.Duration.Seconds())
	}
	storage := sgwapi.New(svc)
	recoveryPoints, err := cdpapi.Extension(svc)
	if err != nil {
		return nil, err
	}
	var ebs awsproto.RESTService
	if snaps, ok := engine.Engine.(ebsapi.Snapshots); ok {
		imports, _ := engine.Engine.(ebsapi.Imports)
		ebs = ebsapi.New(ebsapi.Config{Snapshots: snaps, Imports: imports, NewSnapshotID: svc.NewSnapshotID, Account: o.AccountID, Logger: log})
	}
	creds := awsproto.StaticCredentials{a.creds.AccessKeyID: a.creds.SecretAccessKey}
	api, err := awsproto.NewServer(awsproto.ServerConfig{
		Region:       o.Region,
		Credentials:  creds,
		Storage:      storage,
		StorageModel: model,
		EC2:          ec2api.New(svc),
		Activation:   storage, // the page's answers in the API's words (sgwapi/activation.go)
		Extensions:   []awsproto.JSONExtension{recoveryPoints},
		Metrics:      promhttp.HandlerFor(registry, promhttp.HandlerOpts{}),
		Observe:      observe,
		Logger:       log,
		REST:         ebs, // the EBS direct APIs (internal/ebsapi)
	})
	if err != nil {
		return nil, err
	}
	// The status page shares the API's endpoint, under its own paths.
	history := statuspage.NewHistory(o.StatusSampleInterval, time.Hour)
	histCtx, stopHist := context.WithCancel(context.Background())
	histDone := make(chan struct{})
	go func() { defer close(histDone); history.Run(histCtx, svc, log) }()
	a.closers = append(a.closers, func() error { stopHist(); <-histDone; return nil })
	page := statuspage.New(statuspage.Config{Source: svc, Credentials: creds, History: history, Logger: log})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if statuspage.Owns(r.URL.Path) {
			page.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})

	if a.apiLn, err = net.Listen("tcp", o.Listen); err != nil {
		return nil, fmt.Errorf("API listener: %w", err)
	}
	a.httpSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		defer close(a.serveDone)
		if err := a.httpSrv.Serve(a.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server stopped", "err", err)
		}
	}()

	if o.PprofListen != "" {
		if err := a.startPprof(o.PprofListen); err != nil {
			return nil, err
		}
	}

	log.Info("volgw serving", "api", "http://"+a.APIAddr(), "iscsi", a.ISCSIAddr(), "data_dir", o.DataDir,
		"store", storeURL, "region", o.Region, "account", o.AccountID, "version", buildVersion())
	printCredentialHelp(stdout, a.creds, a.APIAddr(), o.Region)
	return a, nil
}

// startPprof serves net/http/pprof on addr, on its own listener and mux:
// never on the API's, whose clients must not reach it. It also turns on
// sampled mutex and block profiles (only while the endpoint is on: they
// cost a little on every contended lock).
func (a *app) startPprof(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	a.pprofLn = ln
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !loopbackHost(host) {
		a.log.Warn("the profiling endpoint is reachable from other machines, unauthenticated; profiles show internals, such as the command line",
			"pprof", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// One sampled event per 100 mutex contentions, and blocking events of
	// a millisecond or more: enough to see a lock convoy, cheap otherwise.
	runtime.SetMutexProfileFraction(100)
	runtime.SetBlockProfileRate(int(time.Millisecond))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("pprof server stopped", "err", err)
		}
	}()
	a.closers = append(a.closers, func() error {
		// A CPU profile or trace in progress is cut short.
		err := srv.Close()
		<-done
		runtime.SetMutexProfileFraction(0)
		runtime.SetBlockProfileRate(0)
		return err
	})
	a.log.Info("profiling endpoint", "pprof", "http://"+ln.Addr().String()+"/debug/pprof/")
	return nil
}

// printCredentialHelp tells the user how to point the AWS CLI at this
// server. The secret is printed only when this start generated it.
func printCredentialHelp(w io.Writer, c apiCredentials, apiAddr, region string) {
	switch {
	case c.Generated:
		fmt.Fprintf(w, "volgw: generated API credentials in %s (mode 0600). To use them with the AWS CLI:\n"+
			"  export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_DEFAULT_REGION=%s\n",
			c.Path, c.AccessKeyID, c.SecretAccessKey, region)
	case c.Path != "":
		fmt.Fprintf(w, "volgw: API credentials are in %s (access key %s); export them as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY\n",
			c.Path, c.AccessKeyID)
	default:
		fmt.Fprintf(w, "volgw: API credentials from VOLGW_ACCESS_KEY_ID (access key %s)\n", c.AccessKeyID)
	}
	fmt.Fprintf(w, "  aws storagegateway list-gateways --endpoint-url http://%s\n", apiAddr)
}

// close shuts the server down gracefully: the API stops taking requests
// and finishes those in flight, then the iSCSI target, the engine (which
// flushes) and the catalog close, in reverse order of opening.
func (a *app) close() error {
	a.closeOnce.Do(func() {
		if a.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := a.httpSrv.Shutdown(ctx); err != nil {
				a.log.Warn("API shutdown", "err", err)
			}
			cancel()
			<-a.serveDone
		}
		a.closeErr = a.closeAll()
		a.log.Info("volgw stopped")
	})
	return a.closeErr
}

func (a *app) closeAll() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	a.closers = nil
	return errors.Join(errs...)
}

func ignoreClosed(f func() error) func() error {
	return func() error {
		if err := f(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}
}

// advertisedAddress is the IPv4 address and port that
// DescribeGatewayInformation reports as the gateway's network interface:
// the listener's own address, or, when it listens on every address, the
// address of the interface that carries the default route.
func advertisedAddress(addr net.Addr) (string, int, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", 0, fmt.Errorf("iSCSI listener address %v is not TCP", addr)
	}
	ip := tcp.IP
	if ip.IsUnspecified() {
		ip = outboundIPv4()
	}
	v4 := ip.To4()
	if v4 == nil {
		return "", 0, fmt.Errorf("iSCSI listener %v: the gateway's network interface must be IPv4", addr)
	}
	return v4.String(), tcp.Port, nil
}

func outboundIPv4() net.IP {
	// A UDP "connection" sends nothing; it only asks the kernel which
	// source address it would route from.
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return net.IPv4(127, 0, 0, 1)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP
}

// runSnapshotSchedules takes the snapshots the volumes' schedules make due,
// checking every interval until ctx ends. A failure is logged and retried
// at the next tick: TakeScheduledSnapshots records a slot as taken only
// once its snapshot exists.
func runSnapshotSchedules(ctx context.Context, svc *control.Service, interval time.Duration, log *slog.Logger) {
	every(ctx, interval, func() {
		ids, err := svc.TakeScheduledSnapshots(ctx)
		for _, id := range ids {
			log.Info("scheduled snapshot taken", "snapshot", id)
		}
		if err != nil && ctx.Err() == nil {
			log.Error("scheduled snapshots", "err", err)
		}
	})
}

// every calls fn at every tick of interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}
