package throttle

import (
	"fmt"
	"testing"
	"time"
)

// TestFreeThenDoublingWaits: Free failures cost nothing; then each doubles the wait
// up to the ceiling; a success forgets; a key quiet for Forget starts afresh.
func TestFreeThenDoublingWaits(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	tb := New(Policy{Free: 3, Base: time.Second, Ceiling: 4 * time.Second, Forget: time.Hour})
	var waits []time.Duration
	for range 7 {
		waits = append(waits, tb.Fail("a", now))
	}
	if fmt.Sprint(waits) != "[0s 0s 0s 1s 2s 4s 4s]" {
		t.Fatalf("waits %v", waits)
	}
	if tb.Blocked("a", now) != 4*time.Second || tb.Blocked("a", now.Add(4*time.Second)) != 0 || tb.Blocked("b", now) != 0 {
		t.Fatal("blocked times")
	}
	if w := tb.Fail("a", now.Add(2*time.Hour)); w != 0 {
		t.Fatalf("a key quiet for longer than Forget waits %v", w)
	}
	tb.Succeed("a")
	if tb.Len() != 0 {
		t.Fatal("success did not forget")
	}
}

// TestTableIsBounded: many keys never grow the table beyond Size.
func TestTableIsBounded(t *testing.T) {
	now := time.Now()
	tb := New(Policy{Size: 100})
	for i := range 10000 {
		tb.Fail(fmt.Sprint(i), now.Add(time.Duration(i)))
	}
	if tb.Len() > 100 {
		t.Fatalf("%d keys held", tb.Len())
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:4000":             "192.0.2.7",
		"[::ffff:192.0.2.7]:4000":    "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::/64",
		"not an address":             "not an address",
	} {
		if got := AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
}
