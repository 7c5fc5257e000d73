package linkemu

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/big"
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
	peersNeedRoot(t)
	l, err := Start(context.Background(), p, Options{Logger: testLogger(t), Seed: 1})
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
	_, rtts := pingTimes(t, c, echo, n, interval, wait)
	return rtts
}

// pingTimes is ping that also returns when each datagram was actually sent: a loaded
// machine can send late.
func pingTimes(t *testing.T, c *net.UDPConn, echo netip.AddrPort, n int, interval, wait time.Duration) ([]time.Time, []time.Duration) {
	t.Helper()
	rtts := make([]time.Duration, n)
	sentAt := make([]time.Time, n)
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
		sentAt[i] = time.Now()
		binary.BigEndian.PutUint32(msg[4:8], uint32(sentAt[i].Sub(start)/time.Microsecond))
		if _, err := c.WriteToUDPAddrPort(msg, echo); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Logf("ping %d: %v", i, err)
		}
	}
	<-done
	return sentAt, rtts
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

// tcpBulk sends as fast as it can from the box to a listener in the hub for d and
// returns the goodput in bit/s measured after warmup (slow start excluded).
func tcpBulk(t *testing.T, l *Link, d, warmup time.Duration) float64 {
	t.Helper()
	var ln net.Listener
	if err := l.InHub(func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(l.HubAddr().String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type mark struct {
		at time.Time
		n  int64
	}
	marks := make(chan [2]mark, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			marks <- [2]mark{}
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		var total int64
		var first, warm mark
		for {
			n, err := c.Read(buf)
			total += int64(n)
			now := time.Now()
			if first.at.IsZero() {
				first = mark{now, total}
			}
			if warm.at.IsZero() && now.Sub(first.at) >= warmup {
				warm = mark{now, total}
			}
			if err != nil {
				marks <- [2]mark{warm, {now, total}}
				return
			}
		}
	}()
	var c net.Conn
	if err := l.InBox(func() (err error) {
		c, err = net.Dial("tcp4", ln.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	end := time.Now().Add(d)
	c.SetWriteDeadline(end)
	for time.Now().Before(end) {
		if _, err := c.Write(buf); err != nil {
			break
		}
	}
	// Closing drops what is still queued in the socket: the receiver measures only
	// what arrived by now.
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	m := <-marks
	if m[0].at.IsZero() || !m[1].at.After(m[0].at) {
		t.Fatal("the receiver saw no data after the warm-up")
	}
	return float64(m[1].n-m[0].n) * 8 / m[1].at.Sub(m[0].at).Seconds()
}

// peersNeedRoot skips (or, in CI, fails) the test unless it may build namespaces.
func peersNeedRoot(t *testing.T) {
	t.Helper()
	peers.NeedRoot(t)
	peers.Need(t, "ip")
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// firstBoxAddr is the address every link's box starts with.
func firstBoxAddr(l *Link) netip.Addr { return l.hostAddr(firstBox) }

// testTLS returns TLS configurations for a QUIC server named "hub" and a client that
// trusts only its freshly made certificate.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "hub"},
		DNSNames:     []string{"hub"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{"linkemu-test"},
	}
	client = &tls.Config{RootCAs: pool, ServerName: "hub", NextProtos: []string{"linkemu-test"}}
	return server, client
}
