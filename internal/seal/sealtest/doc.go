// Package sealtest is test support for code that seals: keyrings of new
// random keys, and of lines shared between the gateways of one test.
package sealtest
