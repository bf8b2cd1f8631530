// Package seal turns what the volume engine stores — blocks, manifest pages,
// roots, the private fields of snapshot records — into the bytes the object
// store holds, and back: compressed (zstd) when that saves space, sealed
// (AES-256-GCM) when the volume has a key. It owns the keyring (the named
// keys the gateway is configured with) and the object formats below;
// it knows nothing of volumes, stores or the API.
//
// Object formats, told apart by their first bytes:
//
//	raw      the plaintext as it is (a block: exactly rawLen bytes; a page,
//	         root or record: its own encoding, which never starts with "VG")
//	"VGZ1"   then one zstd frame: compressed, not sealed
//	"VGE1"   keyID[8] flags[1] salt[32] nonce[12] then AES-256-GCM
//	         ciphertext and tag of the plaintext (zstd-compressed first when
//	         flags&1)
//
// A block object of exactly rawLen bytes is always raw: Seal never produces
// another object of that length, so a block that happens to start with a
// magic is still read correctly.
//
// Invariants kept here:
//   - Nonces never repeat under one key: each sealed object is encrypted
//     under its own subkey, HKDF-SHA256(secret, salt) with a fresh random
//     32-byte salt, and a fresh random nonce. The subkey seals exactly one
//     message.
//   - An object cannot be moved: the GCM additional data is the object's
//     header and its key in the store (the ref, without the bucket
//     prefix), so a sealed object copied under another name fails to open.
//   - Names leak nothing: a sealed volume names its content with
//     HMAC-SHA256(nameKey, plaintext) (Key.Name) instead of SHA-256, so the
//     bucket owner cannot test a guess of a block's content against its
//     name. Equal content under one key still gets one name, so
//     deduplication within a key keeps working.
//   - Secrets never leave the Keyring: they are not printed by String or
//     logged, and only the 8-byte key ID (a MAC of a constant) is written
//     into objects.
package seal
