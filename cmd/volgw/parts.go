package main

// productionParts are the block engine (internal/volume) and the iSCSI
// target (internal/iscsi) that `volgw serve` runs. They are wired here as
// soon as those packages are in the tree; until then serve refuses to start
// rather than run without them.
var productionParts = parts{}
