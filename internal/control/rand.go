package control

import "crypto/rand"

// cryptoRand reads crypto/rand; IDs and activation keys must not be
// guessable.
type cryptoRand struct{}

func (cryptoRand) Read(p []byte) (int, error) { return rand.Read(p) }
