package statuspage

import (
	"bytes"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/volgw/volgw/internal/bytesize"
)

// render writes t with data, or a plain error if it fails (then nothing
// half-rendered reaches the browser).
func render(w http.ResponseWriter, status int, t *template.Template, data any) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		http.Error(w, "the page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

type signinData struct {
	CSRF, Problem string
}

type statusData struct {
	View
	CSRF, AccessKeyID string
	Refresh           int // seconds
}

// Chart geometry, in SVG user units.
const (
	chartWidth  = 600
	chartHeight = 120
	chartLeft   = 48 // room for the y labels
	chartBottom = 18 // room for the x labels
)

// chart is one volume's lag over the window, ready to draw.
type chart struct {
	Points  string // the polyline's "x,y x,y …"
	Dots    []point
	YMax    string // the top of the y axis, as a duration
	Latest  string
	Samples int
	Window  string
}

type point struct{ X, Y string }

// lagChart scales samples into the chart: x is time over window ending at
// now, y is lag from 0 to a round number above the largest.
func lagChart(samples []Sample, now time.Time, window time.Duration) chart {
	c := chart{Samples: len(samples), Window: shortDuration(window)}
	top := 10 * time.Second
	for _, s := range samples {
		top = max(top, s.Lag)
	}
	top = roundUp(top)
	c.YMax = shortDuration(top)
	plotW, plotH := float64(chartWidth-chartLeft), float64(chartHeight-chartBottom)
	var pts []string
	for _, s := range samples {
		age := now.Sub(s.Time)
		if age > window || age < 0 {
			continue
		}
		x := float64(chartLeft) + plotW*(1-float64(age)/float64(window))
		y := plotH * (1 - float64(s.Lag)/float64(top))
		p := point{X: strconv.FormatFloat(x, 'f', 1, 64), Y: strconv.FormatFloat(y, 'f', 1, 64)}
		pts = append(pts, p.X+","+p.Y)
		c.Dots = append(c.Dots, p)
	}
	c.Points = strings.Join(pts, " ")
	if len(c.Dots) > 1 {
		c.Dots = nil // a line shows them; a lone sample needs its dot
	}
	if len(samples) > 0 {
		c.Latest = shortDuration(samples[len(samples)-1].Lag)
	}
	return c
}

// axisTops are the y axis's possible tops: round values a person reads at
// a glance, from the cut interval's order to a day.
var axisTops = []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute,
	5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour,
	12 * time.Hour, 24 * time.Hour}

// roundUp is the smallest axis top at or above d (whole hours beyond).
func roundUp(d time.Duration) time.Duration {
	for _, top := range axisTops {
		if top >= d {
			return top
		}
	}
	return d.Truncate(time.Hour) + time.Hour
}

func shortDuration(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return strconv.FormatFloat(d.Hours(), 'f', -1, 64) + " h"
	case d >= time.Minute:
		return strconv.FormatFloat(math.Round(d.Minutes()*10)/10, 'f', -1, 64) + " min"
	default:
		return strconv.FormatFloat(math.Round(d.Seconds()*10)/10, 'f', -1, 64) + " s"
	}
}

var funcs = template.FuncMap{
	"size": bytesize.Format,
	"usedSize": func(p *int64) string {
		if p == nil {
			return "–"
		}
		return bytesize.Format(*p)
	},
	"pct": func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + "%" },
	"progress": func(p *float64) string {
		if p == nil {
			return ""
		}
		return " (" + strconv.FormatFloat(*p, 'f', 0, 64) + "%)"
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"lag": func(v Volume) string {
		if v.RecoveryPoint.IsZero() {
			return "–"
		}
		return shortDuration(v.Lag.Round(100 * time.Millisecond))
	},
	"chart": func(v Volume, now time.Time) chart { return lagChart(v.Lags, now, time.Hour) },
	"tail":  func(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] },
	"cw":    func() int { return chartWidth },
	"ch":    func() int { return chartHeight },
	"cl":    func() int { return chartLeft },
	"plotBottom": func() int {
		return chartHeight - chartBottom
	},
}

const style = `<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111;max-width:70em}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.5em 0 .4em}h3{font-size:1em;margin:1em 0 .3em}
table{border-collapse:collapse;margin:.3em 0 1em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#666}
.problem{color:#a00;font-weight:bold}svg{background:#fafafa;border:1px solid #ddd}
form.inline{display:inline}label{display:block;margin:.6em 0 .2em}input[type=text],input[type=password]{width:26em;padding:.3em}
button{padding:.3em 1em;margin-top:.8em}
</style>`

var signinTemplate = template.Must(template.New("signin").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>volgw — sign in</title>` + style + `</head>
<body>
<h1>volgw</h1>
<p>Sign in with the gateway's API key pair (the one <code>volgw serve</code> prints at start, or its data dir's <code>credentials</code> file).</p>
{{with .Problem}}<p class="problem" id="problem">{{.}}</p>{{end}}
<form method="post" action="/status/signin" id="signin">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="access_key_id">Access key ID</label><input type="text" id="access_key_id" name="access_key_id" autocomplete="username" required>
<label for="secret_access_key">Secret access key</label><input type="password" id="secret_access_key" name="secret_access_key" autocomplete="current-password" required>
<div><button type="submit">Sign in</button></div>
</form>
</body></html>`))

var statusTemplate = template.Must(template.New("status").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{{.Refresh}}"><title>volgw — status</title>` + style + `</head>
<body>
<h1>volgw status</h1>
<p class="muted">{{when .Time}} · volgw {{.Version}} · signed in as {{.AccessKeyID}} · this page reloads every {{.Refresh}} s
<form class="inline" method="post" action="/status/signout"><input type="hidden" name="csrf" value="{{.CSRF}}"> <button type="submit" id="signout">Sign out</button></form></p>
{{if not .Gateways}}<p id="no-gateway">No gateway is activated.</p>{{end}}
{{range .Gateways}}{{$now := $.Time}}
<section class="gateway" id="{{.ID}}">
<h2>Gateway {{.ID}} “{{.Name}}”</h2>
<table><tr><th>State</th><td>{{.State}}</td><th>Time zone</th><td>{{.Timezone}}</td></tr>
{{if .Running}}<tr><th>Cache</th><td>{{size .CacheBytes}}, {{pct .CacheUsedPercent}} used, {{pct .CacheDirtyPercent}} dirty</td>
<th>Upload backlog</th><td class="n" id="backlog-{{.ID}}">{{size .UploadBufferUsedBytes}} of {{size .UploadBufferBytes}} ({{pct .UploadBufferUsedPercent}})</td></tr>{{end}}
</table>
{{if .Running}}
<h3>Volumes</h3>
{{if not .Volumes}}<p>No volumes.</p>{{else}}
<table class="volumes"><tr><th>Volume</th><th>Status</th><th>Size</th><th>Used</th><th>Recovery point</th><th>Behind</th><th>Target</th></tr>
{{range .Volumes}}<tr class="volume" id="{{.ID}}"><td>{{.ID}}</td><td>{{.Status}}{{progress .Progress}}{{if and .Attachment (ne .Attachment "ATTACHED")}} ({{.Attachment}}){{end}}</td>
<td class="n">{{size .SizeBytes}}</td><td class="n">{{usedSize .UsedBytes}}</td><td>{{when .RecoveryPoint}}</td><td class="n">{{lag .}}</td><td>{{if .Target}}{{tail .Target}}{{else}}–{{end}}</td></tr>
{{end}}</table>
{{range .Volumes}}{{$c := chart . $now}}
<figure class="lag" id="lag-{{.ID}}"><figcaption>{{.ID}}: how far the recovery point was behind, last {{$c.Window}} ({{$c.Samples}} samples{{with $c.Latest}}, now {{.}}{{end}})</figcaption>
<svg width="{{cw}}" height="{{ch}}" viewBox="0 0 {{cw}} {{ch}}" role="img" aria-label="recovery-point lag of {{.ID}}" xmlns="http://www.w3.org/2000/svg">
<line x1="{{cl}}" y1="0" x2="{{cl}}" y2="{{plotBottom}}" stroke="#999"/><line x1="{{cl}}" y1="{{plotBottom}}" x2="{{cw}}" y2="{{plotBottom}}" stroke="#999"/>
<text x="{{cl}}" y="10" dx="-4" text-anchor="end" font-size="10">{{$c.YMax}}</text><text x="{{cl}}" y="{{plotBottom}}" dx="-4" text-anchor="end" font-size="10">0</text>
<text x="{{cl}}" y="{{ch}}" dy="-4" font-size="10">−{{$c.Window}}</text><text x="{{cw}}" y="{{ch}}" dy="-4" dx="-2" text-anchor="end" font-size="10">now</text>
{{if $c.Points}}<polyline class="lagline" fill="none" stroke="#1565c0" stroke-width="1.5" points="{{$c.Points}}"/>{{end}}
{{range $c.Dots}}<circle cx="{{.X}}" cy="{{.Y}}" r="2.5" fill="#1565c0"/>{{end}}
{{if not $c.Points}}<text x="300" y="55" text-anchor="middle" font-size="11" fill="#666">no samples yet</text>{{end}}
</svg></figure>
{{end}}{{end}}{{end}}
</section>
{{end}}
<h2>Snapshots</h2>
{{if not .Snapshots}}<p id="no-snapshots">No snapshots.</p>{{else}}
<table class="snapshots"><tr><th>Snapshot</th><th>Volume</th><th>Status</th><th>Progress</th><th>Started</th><th>Data as of</th><th>Size</th><th>Description</th></tr>
{{range .Snapshots}}<tr class="snapshot" id="{{.ID}}"><td>{{.ID}}</td><td>{{.VolumeID}}</td><td>{{.Status}}</td><td class="n">{{.Progress}}%</td><td>{{when .StartTime}}</td><td>{{when .RecoveryPointTime}}</td><td class="n">{{size .SizeBytes}}</td><td>{{.Description}}</td></tr>
{{end}}</table>{{end}}
</body></html>`))
