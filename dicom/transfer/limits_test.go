package transfer

import (
	"testing"
	"time"
)

func TestSlotsBoundPerBoxAndInAll(t *testing.T) {
	s := newSlots(2, 3)
	a1, ok1 := s.acquire("A")
	_, ok2 := s.acquire("A")
	if _, ok := s.acquire("A"); !ok1 || !ok2 || ok {
		t.Fatalf("box A took %v, %v and a third (%v) with a bound of 2", ok1, ok2, ok)
	}
	if _, ok := s.acquire("B"); !ok {
		t.Fatal("box B refused while the hub had a slot left")
	}
	if _, ok := s.acquire("C"); ok {
		t.Fatal("box C got a slot beyond the hub's bound of 3")
	}
	a1()
	a1() // a second release gives nothing back twice
	if s.inUse() != 2 {
		t.Fatalf("%d slots in use after one release, want 2", s.inUse())
	}
	if _, ok := s.acquire("C"); !ok {
		t.Fatal("box C refused after a slot was released")
	}
	if _, ok := s.acquire("A"); ok {
		t.Fatal("a released slot was given back twice")
	}
}

func TestBusyLogThrottled(t *testing.T) {
	var l logThrottle
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	if n, ok := l.note(now); !ok || n != 1 {
		t.Fatalf("first refusal: %d, %v; want it logged", n, ok)
	}
	for i := range 99 {
		if _, ok := l.note(now.Add(time.Duration(i) * time.Millisecond)); ok {
			t.Fatalf("refusal %d logged within %v of the last line", i+2, busyLogEvery)
		}
	}
	if n, ok := l.note(now.Add(busyLogEvery)); !ok || n != 100 {
		t.Fatalf("after %v: %d, %v; want one line covering 100 refusals", busyLogEvery, n, ok)
	}
}
