package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/volgw/volgw/internal/bytesize"
)

// storeFigures is what `volgw status` shows of the object store, read off
// the server's /metrics (unsigned, on the API's listener): what the last GC
// round found there, and what compression made of the uploads.
type storeFigures struct {
	lastRound                 time.Time
	objects, bytes            float64
	awaitingObj, awaitingByte float64
	written, stored           float64
	rounds                    bool // a GC round has run: the store figures are there
}

// readStoreFigures sums the store's metrics over their kinds.
func readStoreFigures(ctx context.Context, c *http.Client, endpoint string) (storeFigures, error) {
	var f storeFigures
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/metrics", nil)
	if err != nil {
		return f, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return f, fmt.Errorf("reading %s/metrics: %w", endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return f, fmt.Errorf("reading %s/metrics: %s", endpoint, resp.Status)
	}
	return parseStoreFigures(resp.Body)
}

func parseStoreFigures(r io.Reader) (storeFigures, error) {
	var f storeFigures
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(line[:sp], "{")
		switch name {
		case "volgw_gc_last_round_timestamp_seconds":
			f.rounds = true
			f.lastRound = time.Unix(0, int64(v*1e9))
		case "volgw_store_objects":
			f.objects += v
		case "volgw_store_bytes":
			f.bytes += v
		case "volgw_store_awaiting_reclaim_objects":
			f.awaitingObj += v
		case "volgw_store_awaiting_reclaim_bytes":
			f.awaitingByte += v
		case "volgw_store_uploaded_bytes_total":
			switch {
			case strings.Contains(labels, `form="written"`):
				f.written += v
			case strings.Contains(labels, `form="stored"`):
				f.stored += v
			}
		}
	}
	return f, sc.Err()
}

// line is the status line of the store.
func (f storeFigures) line(now time.Time) string {
	var b strings.Builder
	if f.rounds {
		fmt.Fprintf(&b, "store %s in %.0f objects, %s of them awaiting reclaim (GC %s ago)",
			bytesize.Format(int64(f.bytes)), f.objects, bytesize.Format(int64(f.awaitingByte)), now.Sub(f.lastRound).Round(time.Second))
	} else {
		b.WriteString("store: no GC round yet")
	}
	if f.written > 0 {
		fmt.Fprintf(&b, "; uploaded %s as %s (%.2f)", bytesize.Format(int64(f.written)), bytesize.Format(int64(f.stored)), f.stored/f.written)
	}
	return b.String()
}
