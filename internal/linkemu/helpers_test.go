package linkemu

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"testing"
	"time"

	"lifeline/internal/peers"
)

// startLink starts a link shaped like p for the test and closes it at the end.
func startLink(t *testing.T, p Profile) *Link {
	t.Helper()
	peers.NeedRoot(t)
	peers.Need(t, "ip")
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	l, err := Start(context.Background(), p, Options{Logger: log, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// listenUDP opens a UDP socket in side's namespace on addr:0 (or the wildcard).
func listenUDP(t *testing.T, l *Link, side Side, addr netip.Addr) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := l.In(side, func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpEcho runs a UDP echo server in the hub namespace until the test ends and returns
// its address. It also reports the source of each datagram on seen, if not nil.
func udpEcho(t *testing.T, l *Link, seen chan<- netip.AddrPort) netip.AddrPort {
	t.Helper()
	c := listenUDP(t, l, Hub, l.HubAddr())
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if seen != nil {
				select {
				case seen <- from:
				default:
				}
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return netip.MustParseAddrPort(c.LocalAddr().String())
}

// ping sends n numbered datagrams every interval from c to echo and returns the round
// trip of each (0 for those that never came back within wait after the last).
func ping(t *testing.T, c *net.UDPConn, echo netip.AddrPort, n int, interval, wait time.Duration) []time.Duration {
	t.Helper()
	rtts := make([]time.Duration, n)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			c.SetReadDeadline(start.Add(time.Duration(n)*interval + wait))
			m, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if m < 8 {
				continue
			}
			i := binary.BigEndian.Uint32(buf[:4])
			sent := start.Add(time.Duration(binary.BigEndian.Uint32(buf[4:8])) * time.Microsecond)
			if int(i) < n {
				rtts[i] = time.Since(sent)
			}
		}
	}()
	msg := make([]byte, 32)
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		binary.BigEndian.PutUint32(msg[:4], uint32(i))
		binary.BigEndian.PutUint32(msg[4:8], uint32(time.Since(start)/time.Microsecond))
		if _, err := c.WriteToUDPAddrPort(msg, echo); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Logf("ping %d: %v", i, err)
		}
	}
	<-done
	return rtts
}

// median returns the median of the non-zero durations, and how many there were.
func median(ds []time.Duration) (time.Duration, int) {
	var got []time.Duration
	for _, d := range ds {
		if d > 0 {
			got = append(got, d)
		}
	}
	if len(got) == 0 {
		return 0, 0
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	return got[len(got)/2], len(got)
}

var netipUnspecified = netip.IPv4Unspecified()
