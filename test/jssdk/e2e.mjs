// End-to-end run of the seed examples with the AWS SDK for JavaScript v3
// against a running `volgw serve` (VOLGW_ENDPOINT, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY). The JS SDK signs its own set of headers
// (amz-sdk-invocation-id, amz-sdk-request, x-amz-user-agent, ...). Prints
// PASS last when every check held. Run by cmd/volgw's TestJSSDK.
import {
  StorageGatewayClient, ActivateGatewayCommand, DescribeGatewayInformationCommand, ListLocalDisksCommand,
  AddCacheCommand, AddUploadBufferCommand, CreateCachediSCSIVolumeCommand, ListVolumeRecoveryPointsCommand,
  CreateSnapshotFromVolumeRecoveryPointCommand, ListGatewaysCommand,
} from "@aws-sdk/client-storage-gateway";
import { EC2Client, DescribeSnapshotsCommand, DeleteSnapshotCommand } from "@aws-sdk/client-ec2";

const endpoint = process.env.VOLGW_ENDPOINT;
const credentials = { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY };
const config = { endpoint, region: "us-east-1", credentials, maxAttempts: 1 };
const sgw = new StorageGatewayClient(config);
const ec2 = new EC2Client(config);

function check(what, cond, got) {
  if (!cond) {
    console.error(`FAIL: ${what}: ${JSON.stringify(got)}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

async function expectError(what, promise, name, message, status, errorCode) {
  try {
    await promise;
  } catch (e) {
    check(`${what} -> ${name}`, e.name === name && (message === undefined || e.message === message) &&
      (status === undefined || e.$metadata?.httpStatusCode === status) &&
      (errorCode === undefined || e.error?.errorCode === errorCode),
      { name: e.name, message: e.message, status: e.$metadata?.httpStatusCode, error: e.error });
    return;
  }
  check(`${what} fails`, false, "succeeded");
}

const page = await fetch(`${endpoint}/?activationRegion=us-east-1&gatewayType=CACHED`, { redirect: "manual" });
check("activation page answers 302", page.status === 302, page.status);
const key = new URL(page.headers.get("location")).searchParams.get("activationKey");
check("activation key shape", /^[0-9A-Z]{5}(-[0-9A-Z]{5}){4}$/.test(key), key);

const { GatewayARN: gw } = await sgw.send(new ActivateGatewayCommand({ ActivationKey: key, GatewayName: "js-gateway",
  GatewayTimezone: "GMT", GatewayRegion: "us-east-1", GatewayType: "CACHED" }));
check("GatewayARN", /^arn:aws:storagegateway:us-east-1:\d{12}:gateway\/sgw-[0-9A-F]{8}$/.test(gw), gw);
const info = await sgw.send(new DescribeGatewayInformationCommand({ GatewayARN: gw }));
const ip = info.GatewayNetworkInterfaces[0].Ipv4Address;
const disks = (await sgw.send(new ListLocalDisksCommand({ GatewayARN: gw }))).Disks.map((d) => d.DiskId);
await sgw.send(new AddCacheCommand({ GatewayARN: gw, DiskIds: disks.filter((d) => d.startsWith("cache")) }));
await sgw.send(new AddUploadBufferCommand({ GatewayARN: gw, DiskIds: disks.filter((d) => d.startsWith("buffer")) }));
const vol = await sgw.send(new CreateCachediSCSIVolumeCommand({ GatewayARN: gw, VolumeSizeInBytes: 1 << 30,
  TargetName: "js-vol", NetworkInterfaceId: ip, ClientToken: "js-token-1" }));
check("VolumeARN", vol.VolumeARN.startsWith(`${gw}/volume/vol-`), vol);
check("TargetARN", vol.TargetARN === `${gw}/target/iqn.1997-05.com.amazon:js-vol`, vol);

const rps = await sgw.send(new ListVolumeRecoveryPointsCommand({ GatewayARN: gw }));
const rp = rps.VolumeRecoveryPointInfos[0];
check("list-volume-recovery-points", rps.GatewayARN === gw && rp.VolumeARN === vol.VolumeARN && rp.VolumeSizeInBytes === 1 << 30 &&
  /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(rp.VolumeRecoveryPointTime), rps);
const snap = await sgw.send(new CreateSnapshotFromVolumeRecoveryPointCommand({ VolumeARN: vol.VolumeARN,
  SnapshotDescription: "snapshot description", Tags: [{ Key: "sdk", Value: "js" }] }));
check("create-snapshot-from-volume-recovery-point", /^snap-[0-9a-f]{17}$/.test(snap.SnapshotId) && snap.VolumeARN === vol.VolumeARN &&
  snap.VolumeRecoveryPointTime >= rp.VolumeRecoveryPointTime, snap);

const ds = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snap.SnapshotId] }));
const s = ds.Snapshots[0];
check("describe-snapshots", ds.Snapshots.length === 1 && s.SnapshotId === snap.SnapshotId && s.State === "completed" &&
  s.VolumeSize === 1 && s.VolumeId === vol.VolumeARN.split("/").pop().toLowerCase() && s.Description === "snapshot description" &&
  s.Tags?.some((t) => t.Key === "sdk" && t.Value === "js"), s);
await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snap.SnapshotId }));
await expectError("describe deleted snapshot", ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snap.SnapshotId] })),
  "InvalidSnapshot.NotFound", `The snapshot '${snap.SnapshotId}' does not exist.`, 400);

await expectError("unknown volume", sgw.send(new CreateSnapshotFromVolumeRecoveryPointCommand({
  VolumeARN: `${gw}/volume/vol-0123456789ABCDEF0`, SnapshotDescription: "x" })),
  "InvalidGatewayRequestException", "The specified volume was not found.", 400, "VolumeNotFound");
await expectError("description of 256 characters", sgw.send(new CreateSnapshotFromVolumeRecoveryPointCommand({
  VolumeARN: vol.VolumeARN, SnapshotDescription: "d".repeat(256) })), "ValidationException",
  `1 validation error detected: Value '${"d".repeat(256)}' at 'snapshotDescription' failed to satisfy constraint: ` +
  "Member must have length less than or equal to 255", 400);
const bad = new StorageGatewayClient({ ...config, credentials: { ...credentials, secretAccessKey: "wrong" } });
await expectError("wrong secret", bad.send(new ListGatewaysCommand({})), "InvalidSignatureException", undefined, 403);
console.log("PASS");
