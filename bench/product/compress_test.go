package product

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// compressContent is one image the compression benchmark copies onto a
// volume: real content, not only random bytes.
type compressContent struct {
	name string
	path string
	// data is the image's allocated bytes: what a user would call the
	// data on it (holes read as zeros, which volgw never stores).
	data int64
}

// rootfsDirs is a Debian root file system as installed on this machine
// (Debian 12): programs, libraries, documentation, configuration and the
// package database.
var rootfsDirs = []string{"/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu", "/usr/share/doc", "/usr/share/man", "/etc", "/var/lib/dpkg"}

// rootfsImage builds an ext4 image holding rootfsDirs, made by mkfs.ext4
// -d as an image builder would: file system metadata, journal and files
// as they lie on a real disk.
func (e *benchEnv) rootfsImage(ctx context.Context) (compressContent, error) {
	src := filepath.Join(e.dir, "rootfs-src")
	for _, d := range rootfsDirs {
		dst := filepath.Join(src, d)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return compressContent{}, err
		}
		// Hard links when the bench dir shares the root's file system
		// (no copy), a copy otherwise.
		if _, err := run(ctx, 5*time.Minute, "cp", "-a", "--link", d, filepath.Dir(dst)); err != nil {
			os.RemoveAll(dst)
			if _, err := run(ctx, 10*time.Minute, "cp", "-a", d, filepath.Dir(dst)); err != nil {
				return compressContent{}, err
			}
		}
	}
	img := filepath.Join(e.dir, "rootfs.ext4")
	if _, err := run(ctx, 10*time.Minute, "mkfs.ext4", "-q", "-F", "-d", src, img, "2G"); err != nil {
		return compressContent{}, fmt.Errorf("mkfs.ext4 -d: %w", err)
	}
	os.RemoveAll(src)
	return imageContent("Debian 12 root file system, ext4 (mkfs.ext4 -d)", img)
}

// databaseImage writes an SQLite database as an application would fill
// one: an orders table with customers' names, addresses, e-mail, amounts,
// timestamps and a JSON note, and two indexes.
func (e *benchEnv) databaseImage(ctx context.Context) (compressContent, error) {
	db := filepath.Join(e.dir, "orders.sqlite")
	const script = `
import random, sqlite3, sys, json, datetime
random.seed(11)
first = "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen".split()
last = "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin".split()
streets = "Main Oak Pine Maple Cedar Elm Washington Lake Hill Park View Sunset Lincoln Jackson Church".split()
cities = "Springfield Riverside Franklin Greenville Bristol Clinton Fairview Salem Madison Georgetown Arlington Ashland".split()
items = "widget gadget sprocket bolt nut washer bracket hinge spring gear pulley belt valve gasket fitting".split()
con = sqlite3.connect(sys.argv[1])
con.execute("pragma journal_mode=off")
con.execute("pragma synchronous=off")
con.execute("create table orders (id integer primary key, customer text, email text, address text, city text, placed text, status text, amount real, items integer, note text)")
t0 = datetime.datetime(2024, 1, 1)
target = int(sys.argv[2])
n = 0
while True:
    rows = []
    for _ in range(20000):
        n += 1
        f, l = random.choice(first), random.choice(last)
        note = json.dumps({"sku": "%s-%05d" % (random.choice(items), random.randrange(100000)), "qty": random.randrange(1, 20), "gift": random.random() < 0.1, "channel": random.choice(["web", "store", "phone"])})
        rows.append((n, f + " " + l, "%s.%s%d@example.com" % (f.lower(), l.lower(), random.randrange(1000)),
            "%d %s St" % (random.randrange(1, 9999), random.choice(streets)), random.choice(cities),
            (t0 + datetime.timedelta(seconds=n * 37)).isoformat(), random.choice(["placed", "paid", "shipped", "delivered", "returned"]),
            round(random.uniform(1, 2000), 2), random.randrange(1, 12), note))
    con.executemany("insert into orders values (?,?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    if con.execute("pragma page_count").fetchone()[0] * con.execute("pragma page_size").fetchone()[0] >= target:
        break
con.execute("create index orders_customer on orders(customer)")
con.execute("create index orders_placed on orders(placed)")
con.commit()
con.close()
`
	if _, err := run(ctx, 20*time.Minute, "python3", "-c", script, db, strconv.Itoa(384<<20)); err != nil {
		return compressContent{}, fmt.Errorf("building the SQLite database: %w", err)
	}
	return imageContent("SQLite database (orders table, two indexes)", db)
}

func imageContent(name, path string) (compressContent, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return compressContent{}, err
	}
	return compressContent{name: name, path: path, data: st.Blocks * 512}, nil
}

// compressMode is how volgw serve is started for one column.
type compressMode struct {
	name  string
	flags []string
}

// storeSentBytes reads volgw_store_sent_bytes_total off the gateway's
// /metrics: the bytes its PUTs carried to the store.
func (g *gateway) storeSentBytes() (float64, error) {
	resp, err := http.Get(g.api + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "volgw_store_sent_bytes_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no volgw_store_sent_bytes_total on %s/metrics", g.api)
}

// TestCompressionBench: what compression saves and costs on real
// content, through the product path — `volgw serve` on a versitygw bucket,
// a gateway and volume created through the API, each image copied over
// iSCSI with qemu-img convert, then read back cold after a restart.
func TestCompressionBench(t *testing.T) {
	e := newBenchEnv(t)
	ctx := context.Background()
	rounds := envInt("VOLGW_BENCH_ROUNDS", 3)
	for _, tool := range []string{"qemu-img", "mkfs.ext4", "python3", "cp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: %v", tool, err)
		}
	}
	var contents []compressContent
	for _, build := range []func(context.Context) (compressContent, error){e.rootfsImage, e.databaseImage} {
		c, err := build(ctx)
		if err != nil {
			t.Fatal(err)
		}
		contents = append(contents, c)
	}
	rnd, err := randomFile(filepath.Join(e.dir, "random.img"), 512<<20)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := imageContent("random bytes (incompressible)", rnd); err == nil {
		contents = append(contents, c)
	} else {
		t.Fatal(err)
	}
	endpoint, err := e.startVersityGW("volgw")
	if err != nil {
		t.Fatal(err)
	}
	bucketDir := filepath.Join(e.dir, "s3", "volgw")
	modes := []compressMode{{"off", nil}, {"zstd", []string{"--compress"}}}

	type measure struct{ uploaded, stored, upRate, coldRate float64 }
	got := map[string]map[string][]measure{} // content → mode → rounds
	loadBefore := loadavg()
	for round := range rounds {
		for _, c := range contents {
			order := modes
			if round%2 == 1 {
				order = []compressMode{modes[1], modes[0]}
			}
			for _, m := range order {
				prefix := fmt.Sprintf("r%d-%s-%s", round, m.name, strings.Fields(c.name)[0])
				q := url.Values{"endpoint": {endpoint}, "region": {"us-east-1"}, "path_style": {"true"}}
				flags := append([]string{"--store", "s3://volgw/" + prefix + "?" + q.Encode()}, m.flags...)
				g, err := e.startGateway(ctx, filepath.Join(e.dir, "data-"+prefix), flags,
					[]string{"VOLGW_S3_ACCESS_KEY_ID=" + s3Key, "VOLGW_S3_SECRET_ACCESS_KEY=" + s3Secret})
				if err != nil {
					t.Fatal(err)
				}
				fi, err := os.Stat(c.path)
				if err != nil {
					t.Fatal(err)
				}
				size := max((fi.Size()+1<<30-1)&^(1<<30-1), 1<<30)
				if err := g.activate(ctx); err != nil {
					t.Fatal(err)
				}
				if err := g.createVolume(ctx, size, "compress"); err != nil {
					t.Fatal(err)
				}
				sent0, err := g.storeSentBytes()
				if err != nil {
					t.Fatal(err)
				}
				stored0 := dirBytes(filepath.Join(bucketDir, prefix))
				start, end, err := qemuConvert(ctx, device{name: "volgw", url: g.lun}, c.path)
				if err != nil {
					t.Fatalf("%s, %s: %v", c.name, m.name, err)
				}
				seen, err := g.waitDurable(ctx, end)
				if err != nil {
					t.Fatal(err)
				}
				sent1, err := g.storeSentBytes()
				if err != nil {
					t.Fatal(err)
				}
				var ms measure
				ms.uploaded = sent1 - sent0
				ms.stored = float64(dirBytes(filepath.Join(bucketDir, prefix)) - stored0)
				ms.upRate = float64(c.data) / seen.Sub(start).Seconds() / 1e6
				if err := g.restart(ctx); err != nil {
					t.Fatal(err)
				}
				d := device{name: "volgw", url: g.lun, limit: fi.Size() &^ (1<<20 - 1)}
				rate, _, err := qemuBench(ctx, d, false, 1<<20, 0, 8, int(d.limit>>20))
				if err != nil {
					t.Fatal(err)
				}
				ms.coldRate = rate
				if err := g.proc.stop(syscall.SIGTERM, time.Minute); err != nil {
					t.Fatal(err)
				}
				os.RemoveAll(filepath.Join(e.dir, "data-"+prefix))
				t.Logf("round %d %-50s %-4s uploaded %6.0f MiB stored %6.0f MiB, to durable %6.1f MB/s, cold read %6.1f MB/s (load %s)",
					round, c.name, m.name, ms.uploaded/(1<<20), ms.stored/(1<<20), ms.upRate, ms.coldRate, loadavg())
				if got[c.name] == nil {
					got[c.name] = map[string][]measure{}
				}
				got[c.name][m.name] = append(got[c.name][m.name], ms)
			}
		}
	}
	med := func(ms []measure, f func(measure) float64) float64 {
		var s []float64
		for _, m := range ms {
			s = append(s, f(m))
		}
		return median(s)
	}
	var report strings.Builder
	fmt.Fprintf(&report, "volgw serve on one versitygw (127.0.0.1), a volume per measurement created through the API, each image copied over iSCSI (`qemu-img convert -n -W -m 8`), durable = ListVolumeRecoveryPoints at or past the copy's end; cold read = `qemu-img bench` 1 MiB QD8 over the image after a restart. %d rounds, modes interleaved, medians; MiB = 2^20 bytes, MB/s = 10^6 bytes/s; load average %s before, %s after.\n\n",
		rounds, loadBefore, loadavg())
	report.WriteString("| content | data | mode | uploaded | stored | stored ÷ data | to durable | cold read |\n|---|---:|---|---:|---:|---:|---:|---:|\n")
	for _, c := range contents {
		for _, m := range modes {
			ms := got[c.name][m.name]
			up, st := med(ms, func(x measure) float64 { return x.uploaded }), med(ms, func(x measure) float64 { return x.stored })
			fmt.Fprintf(&report, "| %s | %.0f MiB | %s | %.0f MiB | %.0f MiB | %.2f | %.0f MB/s | %.0f MB/s |\n",
				c.name, float64(c.data)/(1<<20), m.name, up/(1<<20), st/(1<<20), st/float64(c.data),
				med(ms, func(x measure) float64 { return x.upRate }), med(ms, func(x measure) float64 { return x.coldRate }))
		}
	}
	report.WriteString("\nzstd ÷ off, per content (medians): bytes stored, time-to-durable rate, cold-read rate.\n\n| content | stored | to durable | cold read |\n|---|---:|---:|---:|\n")
	for _, c := range contents {
		off, on := got[c.name]["off"], got[c.name]["zstd"]
		ratio := func(f func(measure) float64) float64 { return med(on, f) / med(off, f) }
		fmt.Fprintf(&report, "| %s | %.2f | %.2f | %.2f |\n", c.name,
			ratio(func(x measure) float64 { return x.stored }), ratio(func(x measure) float64 { return x.upRate }),
			ratio(func(x measure) float64 { return x.coldRate }))
	}
	t.Logf("\n%s", report.String())
	if path := os.Getenv("VOLGW_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
