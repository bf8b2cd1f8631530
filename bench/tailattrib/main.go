package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/exp/trace"
)

// span is an interval in CLOCK_MONOTONIC nanoseconds.
type span struct{ a, b int64 }

func overlap(x []span, a, b int64) int64 {
	var s int64
	for _, y := range x {
		if lo, hi := max(y.a, a), min(y.b, b); hi > lo {
			s += hi - lo
		}
	}
	return s
}

// cycle is one request on the API connection: woken by the poller (u),
// first on a P (s), blocked on the network again after answering (e).
type cycle struct {
	u, s, e int64
	segs    []segment
}

type segment struct {
	kind   string // run, runnable, syscall, wait:<reason>
	a, b   int64
	thread int64
}

func main() {
	dir := flag.String("dir", "", "VOLGW_BENCH_PROFILE directory (trace.out, perf.data, pids)")
	callsFile := flag.String("calls", "", "VOLGW_BENCH_CALLS file of the same run")
	slowMS := flag.Float64("slow", 10, "calls at least this slow (ms) are attributed")
	flag.Parse()
	if err := run(*dir, *callsFile, *slowMS); err != nil {
		fmt.Fprintln(os.Stderr, "tailattrib:", err)
		os.Exit(1)
	}
}

func run(dir, callsFile string, slowMS float64) error {
	var vpid, tpid int64
	pids, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil {
		return err
	}
	if _, err := fmt.Sscanf(string(pids), "volgw %d\ntest %d", &vpid, &tpid); err != nil {
		return fmt.Errorf("pids: %w", err)
	}
	tr, err := readTrace(filepath.Join(dir, "trace.out"))
	if err != nil {
		return err
	}
	ks, err := readSched(filepath.Join(dir, "perf.data"))
	if err != nil {
		return err
	}
	calls, err := readCalls(callsFile, tr.wallOff, tr.start, tr.end)
	if err != nil {
		return err
	}

	// The timeline, in steps of 20 µs.
	const step = 20000
	n := int((tr.end-tr.start)/step) + 1
	vOn := make([]int8, n) // CPUs running a server thread
	vRq := make([]bool, n) // a server thread runnable in the kernel
	cOn := make([]bool, n) // a client thread on a CPU
	cRq := make([]bool, n) // a client thread runnable in the kernel
	others := make([][]string, n)
	fill := func(x []span, fn func(i int)) {
		for _, y := range x {
			for i := max(0, int((y.a-tr.start)/step)); i < min(n, int((y.b-tr.start)/step)); i++ {
				fn(i)
			}
		}
	}
	for tid, pid := range ks.pid {
		switch {
		case tid == 0:
		case pid == vpid:
			fill(ks.on[tid], func(i int) { vOn[i]++ })
			fill(ks.rq[tid], func(i int) { vRq[i] = true })
		case pid == tpid:
			fill(ks.on[tid], func(i int) { cOn[i] = true })
			fill(ks.rq[tid], func(i int) { cRq[i] = true })
			fallthrough
		default:
			c := ks.comm[tid]
			fill(ks.on[tid], func(i int) { others[i] = append(others[i], c) })
		}
	}
	const (
		clientStarved = "client starved (its threads runnable, none on a CPU)"
		clientWork    = "client work and delivery"
		goQueue       = "Go run queue: server threads on both CPUs, other goroutines"
		kernelQueue   = "kernel run queue: a server thread waits for a CPU"
		goSched       = "Go scheduler, a CPU free"
		handlerCPU    = "handler on a CPU"
		handlerSys    = "handler in a system call"
		handlerLock   = "handler blocked (locks, channels)"
	)
	classes := []string{clientStarved, clientWork, goQueue, kernelQueue, goSched, handlerCPU, handlerSys, handlerLock}
	whoRan := map[string]int64{}
	classify := func(a, b int64, client bool, acc map[string]int64) {
		for t := a; t < b; t += step {
			i := int((t - tr.start) / step)
			if i < 0 || i >= n {
				continue
			}
			d := min(int64(step), b-t)
			switch {
			case client && cRq[i] && !cOn[i]:
				acc[clientStarved] += d
			case vOn[i] >= 2:
				acc[goQueue] += d
			case vRq[i]:
				acc[kernelQueue] += d
				for _, c := range others[i] {
					whoRan[c] += d
				}
			case client:
				acc[clientWork] += d
			default:
				acc[goSched] += d
			}
		}
	}
	ahead := map[string]int64{} // goroutines on a P while the API one waited, by entry function
	total := map[string]int64{}
	var lats []int64
	var slowSum int64
	slow := 0
	for _, c := range calls {
		lats = append(lats, c.lat)
		y := tr.cycleIn(c.c0, c.c1)
		if float64(c.lat) < slowMS*1e6 || y == nil {
			continue
		}
		acc := map[string]int64{}
		classify(c.c0, y.u, true, acc) // sent, until the poller woke the API goroutine
		classify(y.u, y.s, false, acc) // woken, until it ran
		for _, r := range tr.runs {
			if lo, hi := max(r.a, c.c0), min(r.b, y.s); hi > lo && !tr.api[r.g] {
				ahead[tr.label[r.g]] += hi - lo
			}
		}
		for _, s := range y.segs {
			if s.a < y.s {
				continue
			}
			switch s.kind {
			case "run", "syscall":
				k := overlap(ks.rq[s.thread], s.a, s.b)
				acc[kernelQueue] += k
				if s.kind == "run" {
					acc[handlerCPU] += s.b - s.a - k
				} else {
					acc[handlerSys] += s.b - s.a - k
				}
			case "runnable":
				classify(s.a, s.b, false, acc)
			default:
				acc[handlerLock] += s.b - s.a
			}
		}
		classify(y.e, c.c1, true, acc) // answered, until the client had read it
		slow++
		slowSum += c.lat
		for _, k := range classes {
			total[k] += acc[k]
		}
	}
	ms := func(x int64) float64 { return float64(x) / 1e6 }
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	if len(lats) == 0 {
		return fmt.Errorf("no call of %s lies in the trace", callsFile)
	}
	fmt.Printf("%d calls in the %.1f s traced: p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d of them ≥ %.0f ms, %.1f ms in all:\n\n",
		len(lats), ms(tr.end-tr.start)/1000, ms(lats[len(lats)/2]), ms(lats[len(lats)*99/100]), ms(lats[len(lats)-1]), slow, slowMS, ms(slowSum))
	fmt.Println("| where the slow calls' time went | ms | share |\n|---|---:|---:|")
	for _, k := range classes {
		fmt.Printf("| %s | %.1f | %.0f%% |\n", k, ms(total[k]), 100*float64(total[k])/float64(max(1, slowSum)))
	}
	top := func(title string, m map[string]int64) {
		fmt.Printf("\n%s:\n", title)
		type kv struct {
			k string
			v int64
		}
		var kvs []kv
		for k, v := range m {
			kvs = append(kvs, kv{k, v})
		}
		sort.Slice(kvs, func(i, j int) bool { return kvs[i].v > kvs[j].v })
		for i, x := range kvs {
			if i < 8 && x.v >= 1e6 {
				fmt.Printf("  %-70s %7.1f\n", x.k, ms(x.v))
			}
		}
	}
	top("server goroutines on a P between a slow call's send and its handler's start, by entry function (ms)", ahead)
	byPkg := map[string]int64{}
	var aheadSum int64
	for k, v := range ahead {
		pkg := k
		if i := strings.LastIndex(k, "/"); i >= 0 {
			pkg = k[:i] + "/" + strings.SplitN(k[i+1:], ".", 2)[0]
		}
		byPkg[pkg] += v
		aheadSum += v
	}
	for k, v := range byPkg {
		byPkg[k] = 100 * v * 1e6 / max(1, aheadSum)
	}
	top("the same by package, in percent (not ms)", byPkg)
	top("on the CPUs while a server thread waited in the kernel's run queue (ms)", whoRan)
	return nil
}

// call is one client call, in CLOCK_MONOTONIC.
type call struct {
	c0, c1, lat int64
}

// readCalls reads the calls that lie within [start, end].
func readCalls(path string, wallOff, start, end int64) ([]call, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []call
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		var v [3]int64
		for i := range v {
			if v[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
		c := call{c0: v[0] - wallOff, c1: v[1] - wallOff, lat: v[2]}
		if c.c0 >= start && c.c1 <= end {
			out = append(out, c)
		}
	}
	return out, nil
}

type goTrace struct {
	start, end int64 // CLOCK_MONOTONIC
	wallOff    int64 // wall = monotonic + wallOff
	cycles     []*cycle
	api        map[trace.GoID]bool
	label      map[trace.GoID]string
	runs       []goRun
}

type goRun struct {
	g    trace.GoID
	a, b int64
}

func (t *goTrace) cycleIn(a, b int64) *cycle {
	for _, y := range t.cycles {
		if y.u >= a && y.u < b {
			return y
		}
	}
	return nil
}

// readTrace finds the API connections' goroutines (net/http's conn.serve,
// not the profiler's) and cuts their life into request cycles.
func readTrace(path string) (*goTrace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := trace.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, err
	}
	type transition struct {
		g        trace.GoID
		t        int64
		from, to trace.GoState
		reason   string
		thread   int64
	}
	var (
		evs                           []transition
		snapWall, snapMono, snapTrace int64
		first, last                   int64 = -1, 0
		profiler                            = map[trace.GoID]bool{}
	)
	out := &goTrace{api: map[trace.GoID]bool{}, label: map[trace.GoID]string{}}
	mark := func(g trace.GoID, st trace.Stack) {
		var entry string
		for fr := range st.Frames() {
			switch {
			case strings.Contains(fr.Func, "net/http.(*conn).serve"):
				out.api[g] = true
			case strings.Contains(fr.Func, "pprof"), strings.Contains(fr.Func, "promhttp"):
				profiler[g] = true
			}
			if fr.Func != "runtime.goexit" && fr.Func != "sync.(*WaitGroup).Go.func1" {
				entry = fr.Func
			}
		}
		if entry != "" {
			out.label[g] = entry
		}
	}
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		t := int64(ev.Time())
		if first < 0 {
			first = t
		}
		last = t
		if ev.Kind() == trace.EventSync && snapWall == 0 {
			if cs := ev.Sync().ClockSnapshot; cs != nil {
				snapWall, snapMono, snapTrace = cs.Wall.UnixNano(), int64(cs.Mono), int64(cs.Trace)
			}
		}
		if g := ev.Goroutine(); g != trace.NoGoroutine {
			mark(g, ev.Stack())
		}
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		g := st.Resource.Goroutine()
		mark(g, st.Stack)
		from, to := st.Goroutine()
		evs = append(evs, transition{g, t, from, to, st.Reason, int64(ev.Thread())})
	}
	if snapWall == 0 {
		return nil, fmt.Errorf("%s: no clock snapshot (a trace of Go 1.25 or later is needed)", path)
	}
	mono := func(t int64) int64 { return snapMono + t - snapTrace }
	out.start, out.end, out.wallOff = mono(first), mono(last), snapWall-snapMono
	for g := range profiler {
		delete(out.api, g)
	}

	running := map[trace.GoID]int64{}
	type state struct {
		cur    *cycle
		since  int64
		kind   string
		thread int64
	}
	states := map[trace.GoID]*state{}
	for _, e := range evs {
		t := mono(e.t)
		if e.to == trace.GoRunning {
			running[e.g] = t
		} else if a, ok := running[e.g]; ok && e.from == trace.GoRunning {
			out.runs = append(out.runs, goRun{e.g, a, t})
			delete(running, e.g)
		}
		if !out.api[e.g] {
			continue
		}
		s := states[e.g]
		if s == nil {
			s = &state{}
			states[e.g] = s
		}
		if s.cur != nil && s.kind != "" {
			s.cur.segs = append(s.cur.segs, segment{s.kind, s.since, t, s.thread})
		}
		switch {
		case e.to == trace.GoWaiting && strings.Contains(e.reason, "network"):
			if s.cur != nil {
				s.cur.e = t
				out.cycles = append(out.cycles, s.cur)
				s.cur = nil
			}
			s.kind = ""
		case e.from == trace.GoWaiting && e.to == trace.GoRunnable && s.cur == nil && s.kind == "":
			s.cur = &cycle{u: t}
			s.kind = "runnable"
		case e.to == trace.GoRunning:
			if s.cur != nil && s.cur.s == 0 {
				s.cur.s = t
			}
			s.kind, s.thread = "run", e.thread
		case e.to == trace.GoRunnable:
			s.kind = "runnable"
		case e.to == trace.GoSyscall:
			s.kind, s.thread = "syscall", e.thread
		case e.to == trace.GoWaiting:
			s.kind = "wait:" + e.reason
		default:
			s.kind = ""
		}
		s.since = t
	}
	return out, nil
}

// kernelSched is what perf sched recorded: per thread, its spans on a CPU
// and in the run queue (woken or preempted, not yet on a CPU).
type kernelSched struct {
	on, rq map[int64][]span
	pid    map[int64]int64
	comm   map[int64]string
}

func readSched(path string) (*kernelSched, error) {
	cmd := exec.Command("perf", "script", "-i", path, "-F", "pid,tid,cpu,time,event,trace")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ks := &kernelSched{on: map[int64][]span{}, rq: map[int64][]span{}, pid: map[int64]int64{}, comm: map[int64]string{}}
	type state struct{ runnable, on int64 }
	states := map[int64]*state{}
	get := func(tid int64) *state {
		s := states[tid]
		if s == nil {
			s = &state{-1, -1}
			states[tid] = s
		}
		return s
	}
	line := regexp.MustCompile(`^\s*(\d+)/(\d+)\s+\[\d+\]\s+([\d.]+):\s+(sched:sched_switch|sched:sched_waking):\s+(.*)$`)
	kv := regexp.MustCompile(`(\w+)=(\S+)`)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, _ := strconv.ParseInt(m[1], 10, 64)
		tid, _ := strconv.ParseInt(m[2], 10, 64)
		ks.pid[tid] = pid
		sec, _ := strconv.ParseFloat(m[3], 64)
		t := int64(sec*1e9 + 0.5)
		args := map[string]string{}
		for _, a := range kv.FindAllStringSubmatch(m[5], -1) {
			args[a[1]] = a[2]
		}
		if m[4] == "sched:sched_waking" {
			w, _ := strconv.ParseInt(args["pid"], 10, 64)
			if s := get(w); s.on < 0 && s.runnable < 0 {
				s.runnable = t
			}
			continue
		}
		prev, _ := strconv.ParseInt(args["prev_pid"], 10, 64)
		next, _ := strconv.ParseInt(args["next_pid"], 10, 64)
		p := get(prev)
		if p.on >= 0 {
			ks.on[prev] = append(ks.on[prev], span{p.on, t})
		}
		p.on = -1
		if strings.HasPrefix(args["prev_state"], "R") { // preempted: still runnable
			p.runnable = t
		}
		ks.comm[next] = args["next_comm"]
		nx := get(next)
		if nx.runnable >= 0 {
			ks.rq[next] = append(ks.rq[next], span{nx.runnable, t})
		}
		nx.runnable, nx.on = -1, t
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("perf script: %w: %s", err, stderr.String())
	}
	return ks, sc.Err()
}
