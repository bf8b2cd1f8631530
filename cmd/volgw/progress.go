package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/volgw/volgw/internal/bytesize"
	"golang.org/x/sys/unix"
)

// progress reports how far a long copy (snapshot export or import) has
// got. On a terminal it redraws one line in place — a bar, the percentage,
// bytes done, the rate and the time left — ten times a second; anywhere
// else (a pipe, a log file, systemd's journal) it writes a plain line every
// few seconds, since carriage returns and redraws make a log unreadable.
// Either way the last report is written when the copy ends.
type progress struct {
	w        io.Writer
	label    string
	total    int64
	terminal bool
	width    int // columns of the terminal; 0 when not one

	done  atomic.Int64
	start time.Time

	stop     chan struct{}
	finished sync.WaitGroup
	lastLine int64 // bytes at the last plain line
}

// Intervals between reports: a bar is redrawn often enough to look alive,
// a plain line seldom enough not to flood a log.
const (
	barInterval   = 100 * time.Millisecond
	plainInterval = 5 * time.Second
)

// figuresWidth is room for the figures after the bar at their widest:
// "100%  1023.9 GiB / 1023.9 GiB  1023.9 MiB/s  ETA 59m59s" (a bar of 22
// columns on an 80-column terminal).
const figuresWidth = 54

// newProgress starts reporting to w the copy of total bytes named label.
// Call add as bytes are done and end once when the copy ends.
func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now(), stop: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			p.terminal, p.width = true, int(ws.Col)
		}
	}
	interval := plainInterval
	if p.terminal {
		interval = barInterval
	}
	p.finished.Add(1)
	go func() {
		defer p.finished.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.report(false)
			}
		}
	}()
	return p
}

// add records n more bytes done; it may be called from many goroutines.
func (p *progress) add(n int64) { p.done.Add(n) }

// end stops the reports and writes the last one; on a terminal it ends
// the redrawn line so that what follows starts on a line of its own.
func (p *progress) end() {
	close(p.stop)
	p.finished.Wait()
	p.report(true)
}

func (p *progress) report(final bool) {
	done := p.done.Load()
	elapsed := time.Since(p.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(done) / float64(p.total)
	}
	figures := fmt.Sprintf("%3.0f%%  %s / %s  %s/s", pct, bytesize.Format(done), bytesize.Format(p.total), bytesize.Format(int64(rate)))
	if final {
		figures += "  in " + elapsed.Round(100*time.Millisecond).String()
	} else if rate > 0 && done < p.total {
		figures += "  ETA " + time.Duration(float64(p.total-done)/rate*float64(time.Second)).Round(time.Second).String()
	}
	if !p.terminal {
		if !final && done == p.lastLine {
			return // nothing moved: no line to add to the log
		}
		p.lastLine = done
		fmt.Fprintf(p.w, "%s: %s\n", p.label, figures)
		return
	}
	// On a terminal the line is the bar and the figures (the command just
	// typed says what is copied). The bar takes what the figures' widest
	// form leaves, so it keeps its length as they change, and the last
	// column stays free so that the terminal never wraps.
	barWidth := p.width - figuresWidth - 4
	line := figures
	if barWidth >= 10 {
		filled := int(float64(barWidth) * pct / 100)
		filled = min(max(filled, 0), barWidth)
		line = "[" + strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled) + "] " + figures
	}
	end := ""
	if final {
		end = "\n"
	}
	// \r returns to the line's start, \x1b[K clears what a longer
	// previous line left at its end.
	fmt.Fprintf(p.w, "\r%s\x1b[K%s", line, end)
}
