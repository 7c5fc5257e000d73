package dicom

import (
	"crypto/rand"
	"math/big"
)

// NewUID returns a new UID under the 2.25 root: a random (version 4) UUID written as
// one decimal integer (PS3.5 B.2), so no organisation root needs registering.
func NewUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(b).String()
}
