package fs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/fs"
)

// killChildEnv names the store directory a re-executed test binary Puts
// into until it is killed (TestPutKilledAtAnyPoint).
const killChildEnv = "VOLGW_FS_KILL_CHILD_DIR"

// TestPutKilledAtAnyPoint: a process killed (SIGKILL) while Puts are in
// flight, 8 at once into new and existing directories, create-only and
// replacing, leaves every key either absent or whole: every body ends
// with the SHA-256 of what precedes it, so a short or torn object shows.
// Rounds are killed 20-300 ms after the start, so the kill falls at every
// step of a Put across rounds and Puts.
func TestPutKilledAtAnyPoint(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		putUntilKilled(dir)
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	ctx := context.Background()
	for round := range 12 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPutKilledAtAnyPoint$")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rand.IntN(280)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		s, err := fs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = s.List(ctx, "", func(oi blob.ObjectInfo) error {
			n++
			data, err := s.Get(ctx, oi.Key)
			if err != nil {
				return err
			}
			if !wholeBody(data) {
				t.Errorf("round %d: %s holds %d bytes that are not a whole body (torn or short)", round, oi.Key, len(data))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d objects after the kill", round, n)
	}
}

// wholeBody: data ends with the SHA-256 of the rest.
func wholeBody(data []byte) bool {
	if len(data) < sha256.Size {
		return false
	}
	sum := sha256.Sum256(data[:len(data)-sha256.Size])
	return bytes.Equal(sum[:], data[len(data)-sha256.Size:])
}

// putUntilKilled is the child: Puts of 64-256 KiB bodies, 8 at once,
// under keys named by their content's hash (create-only, as the volume
// engine's blocks), spread over many directories, and every fourth a
// replacement of one of a few fixed keys.
func putUntilKilled(dir string) {
	s, err := fs.New(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			for i := 0; ; i++ {
				body := make([]byte, 64<<10+r.IntN(192<<10))
				payload := body[:len(body)-sha256.Size]
				for k := range payload {
					payload[k] = byte(r.Uint32())
				}
				sum := sha256.Sum256(payload)
				copy(body[len(payload):], sum[:])
				h := hex.EncodeToString(sum[:])
				key := "blocks/" + h[:2] + "/" + h
				opts := blob.PutOptions{IfNoneMatch: true}
				if i%4 == 3 {
					key, opts = fmt.Sprintf("fixed/w%d/%d", w, i%3), blob.PutOptions{}
				}
				if _, err := s.Put(ctx, key, body, opts); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
			}
		})
	}
	wg.Wait()
}
