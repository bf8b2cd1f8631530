package control

import (
	"context"
	"fmt"
	mathrand "math/rand"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"
)

// TestSimulation runs random operations against the Service and a plain
// model of what the API must show, comparing the two (and the exporter, and
// the catalog's invariants) after every step. The seed is logged; rerun one
// with VOLGW_SIM_SEED=<seed>.
func TestSimulation(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("VOLGW_SIM_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (VOLGW_SIM_SEED=%d to replay)", seed, seed)
	rng := mathrand.New(mathrand.NewSource(seed))

	f := newFixture(t)
	ctx := context.Background()
	gw := f.activated()

	type modelVolume struct {
		arn, token string
		tags       map[string]string
		chap       map[string]bool
		schedule   bool
	}
	volumes := map[string]*modelVolume{} // by TargetName
	tokens := map[string]string{}        // ClientToken → TargetName it created
	running := true
	targetNames := []string{"a", "b", "c", "d", "e"}

	for step := 0; step < 400; step++ {
		name := targetNames[rng.Intn(len(targetNames))]
		v := volumes[name]
		var what string
		var err error
		op := rng.Intn(9)
		// Every operation but shutdown/start and a restart needs the
		// gateway running: a shut-down one answers GatewayNotConnected and
		// changes nothing.
		gated := op != 6 && op != 7
		switch op {
		case 0, 1: // create, sometimes retrying a token
			token := "tok-" + strconv.Itoa(rng.Intn(8))
			what = "create " + name + " " + token
			arn, _, e := f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{
				GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: name, NetworkInterfaceID: "127.0.0.1", ClientToken: token,
			})
			err = e
			prev, used := tokens[token]
			switch {
			case !running:
			case used && prev == name && volumes[prev] != nil:
				if e != nil || arn != volumes[prev].arn {
					t.Fatalf("step %d %s: retry gave %q %v, want %s", step, what, arn, e, volumes[prev].arn)
				}
				err = nil
			case used && volumes[prev] != nil:
				if !IsCode(e, CodeInvalidParameters) {
					t.Fatalf("step %d %s: token of another request: %v", step, what, e)
				}
				err = nil
			case v != nil:
				if !IsCode(e, CodeTargetAlreadyExists) {
					t.Fatalf("step %d %s: existing target: %v", step, what, e)
				}
				err = nil
			default:
				if e != nil {
					t.Fatalf("step %d %s: %v", step, what, e)
				}
				volumes[name] = &modelVolume{arn: arn, token: token, tags: map[string]string{}, chap: map[string]bool{}, schedule: true}
				tokens[token] = name
			}
		case 2: // delete
			if v == nil {
				continue
			}
			what = "delete " + name
			_, err = f.svc.DeleteVolume(ctx, v.arn)
			if err == nil {
				delete(volumes, name)
				delete(tokens, v.token)
			}
		case 3: // tag
			if v == nil {
				continue
			}
			k, val := "k"+strconv.Itoa(rng.Intn(4)), strconv.Itoa(step)
			what = "tag " + name
			if rng.Intn(2) == 0 {
				_, err = f.svc.AddTagsToResource(ctx, v.arn, []Tag{{k, val}})
				if err == nil {
					v.tags[k] = val
				}
			} else {
				_, err = f.svc.RemoveTagsFromResource(ctx, v.arn, []string{k})
				if err == nil {
					delete(v.tags, k)
				}
			}
		case 4: // CHAP
			if v == nil {
				continue
			}
			ini := "iqn.sim:" + strconv.Itoa(rng.Intn(3))
			target := gw + "/target/" + IQNPrefix + name
			what = "chap " + name + " " + ini
			if rng.Intn(2) == 0 {
				_, _, err = f.svc.UpdateChapCredentials(ctx, ChapCredential{TargetARN: target, InitiatorName: ini, SecretToAuthenticateInitiator: "secret-" + ini})
				if err == nil {
					v.chap[ini] = true
				}
			} else {
				_, _, err = f.svc.DeleteChapCredentials(ctx, target, ini)
				if running && !v.chap[ini] {
					if !IsCode(err, CodeInitiatorNotFound) {
						t.Fatalf("step %d %s: %v", step, what, err)
					}
					err = nil
				}
				if running {
					delete(v.chap, ini)
				}
			}
		case 5: // schedule
			if v == nil {
				continue
			}
			what = "schedule " + name
			if rng.Intn(2) == 0 {
				_, err = f.svc.UpdateSnapshotSchedule(ctx, SnapshotSchedule{VolumeARN: v.arn, StartAt: rng.Intn(24), RecurrenceInHours: 24})
				v.schedule = v.schedule || err == nil
			} else {
				_, err = f.svc.DeleteSnapshotSchedule(ctx, v.arn)
				if running && !v.schedule {
					if !IsCode(err, CodeSnapshotScheduleNotFound) {
						t.Fatalf("step %d %s: %v", step, what, err)
					}
					err = nil
				}
				v.schedule = v.schedule && err != nil
			}
		case 6: // shutdown / start
			if running {
				what = "shutdown"
				_, err = f.svc.ShutdownGateway(ctx, gw)
			} else {
				what = "start"
				_, err = f.svc.StartGateway(ctx, gw)
			}
			if err == nil {
				running = !running
			}
		case 7: // restart the process
			what = "restart"
			f.open(rng.Int63())
		case 8: // snapshot
			if v == nil {
				continue
			}
			what = "snapshot " + name
			_, _, _, err = f.svc.CreateSnapshotFromVolumeRecoveryPoint(ctx, SnapshotInput{VolumeARN: v.arn, SnapshotDescription: "sim"})
		}
		if gated && !running {
			if !IsCode(err, CodeGatewayNotConnected) {
				t.Fatalf("step %d %s while shut down: %v", step, what, err)
			}
			err = nil
		}
		if err != nil {
			t.Fatalf("step %d %s: %v", step, what, err)
		}

		// Compare the API with the model (through the API only while the
		// gateway runs; the catalog and the engine always).
		_, listed, _, err := f.svc.ListVolumes(ctx, gw, "", 0)
		if !running {
			if !IsCode(err, CodeGatewayNotConnected) {
				t.Fatalf("step %d after %s: ListVolumes of a shut-down gateway: %v", step, what, err)
			}
			listed = nil
			for _, mv := range volumes {
				listed = append(listed, VolumeInfo{VolumeARN: mv.arn})
			}
			sort.Slice(listed, func(i, j int) bool { return listed[i].VolumeARN < listed[j].VolumeARN })
		} else if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, l := range listed {
			got = append(got, l.VolumeARN)
		}
		wantIQNs := []string{}
		for n, mv := range volumes {
			want = append(want, mv.arn)
			if running {
				wantIQNs = append(wantIQNs, IQNPrefix+n)
			}
			if !running {
				continue
			}
			tags, _, err := f.svc.ListTagsForResource(ctx, mv.arn, "", 0)
			if err != nil || len(tags) != len(mv.tags) {
				t.Fatalf("step %d after %s: tags of %s = %v, model %v (%v)", step, what, n, tags, mv.tags, err)
			}
			for _, tag := range tags {
				if mv.tags[tag.Key] != tag.Value {
					t.Fatalf("step %d after %s: tag %v, model %v", step, what, tag, mv.tags)
				}
			}
			if running {
				spec, _ := f.exporter.spec(IQNPrefix + n)
				if len(spec.CHAP) != len(mv.chap) {
					t.Fatalf("step %d after %s: exported CHAP of %s = %v, model %v", step, what, n, spec.CHAP, mv.chap)
				}
			}
		}
		sort.Strings(want)
		sort.Strings(wantIQNs)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("step %d after %s: ListVolumes %v, model %v", step, what, got, want)
		}
		if fmt.Sprint(f.exporter.iqns()) != fmt.Sprint(wantIQNs) && !(len(wantIQNs) == 0 && len(f.exporter.iqns()) == 0) {
			t.Fatalf("step %d after %s: exported %v, model %v", step, what, f.exporter.iqns(), wantIQNs)
		}
		if len(f.engine.volumes) != len(volumes) {
			t.Fatalf("step %d after %s: engine has %d volumes, model %d", step, what, len(f.engine.volumes), len(volumes))
		}
		f.check()
		if t.Failed() {
			t.FailNow()
		}
	}
}
