package main

import "errors"

// fanout is (c): not measured yet (see the README of this folder).
func (b *bench) fanout() {
	b.failed("(c) hub fan-out, 20 publishers × 3 viewers at 2 Mbit/s", "loopback", errors.New("not implemented yet"))
}
