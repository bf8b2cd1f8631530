// Package product benchmarks volgw the way a user runs it: the built
// binary, `volgw serve` on its default flags (only its data dir and
// listening ports differ, so that runs never clash), a gateway activated
// and a volume created through the Storage Gateway API with the AWS SDK,
// and the volume used over iSCSI by the Debian initiators (qemu-img,
// iscsi-perf). Every row is measured against a peer in the same run,
// interleaved, medians of rounds:
//
//   - TestProductBench (bench/product.sh): volgw vs tgtd serving a plain,
//     preallocated 4 GiB file; write rows on a fresh upload buffer under
//     memory pressure and again after the upload-buffer ring has wrapped.
//   - TestPeersBench (bench/peers.sh): volgw vs s3backer and nbdkit's S3
//     plugin, all three on one versitygw; acknowledged and durable writes,
//     cold and warm reads, 4 KiB random I/O.
//   - TestWrappedRandomWriteBench (no script: VOLGW_BENCH=1 go test -run
//     it, VOLGW_BENCH_BINS=name=path,… for builds side by side): the
//     product bench's 4 KiB random-write row after the ring has wrapped,
//     pass by pass, with the process's CPU and I/O, the disk's, the cuts
//     and optional profiles and traces of each pass (its doc comment).
//
// The package holds only tests, and they run only with VOLGW_BENCH=1: they
// take minutes, need root (drop_caches, FUSE) and their numbers are for
// reading, not asserting. The scripts pass VOLGW_BENCH_DIR, a directory of
// their own: every server started records its process group in
// VOLGW_BENCH_DIR/pgids, so that the script's trap can kill what a test
// killed by its timeout could not.
package product
