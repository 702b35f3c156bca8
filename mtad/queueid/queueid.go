// Package queueid makes queue IDs. Several nodes share one queue, so an ID
// must be unique across nodes without coordination: it is the time in
// microseconds plus random bits, in upper-case hex like Postfix's short IDs
// (but longer). The store's primary key catches the rare collision and the
// caller draws again.
package queueid

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"
)

// New returns a fresh queue ID of 14 upper-case hex digits: 36 bits of
// microseconds (wraps after about 19 hours, which only affects sort order)
// and 20 random bits.
func New() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := binary.BigEndian.Uint32(b[:]) & 0xFFFFF
	us := uint64(time.Now().UnixMicro()) & 0xFFFFFFFFF
	return fmt.Sprintf("%09X%05X", us, r)
}
