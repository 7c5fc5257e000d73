package whip

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// udpRelay stands between the box and Chromium as the 5G network does: each side sees
// only the relay's address, so the test can cut the link (every packet lost, as in a
// tunnel; the senders notice nothing) and bring it back with the box at a new address,
// as after a handover. Signalling does not cross it, as the hub's HTTPS would not be
// lost with the media in these tests: what is tested is ICE.
type udpRelay struct {
	t       *testing.T
	boxSide *net.UDPConn // the box sends here

	mu          sync.Mutex
	browserSide *net.UDPConn // Chromium sends here; it is the box's address as Chromium sees it
	box         *net.UDPAddr // the box's candidate
	browser     *net.UDPAddr // Chromium's candidate
	down        bool
	lossEvery   int // when set, every lossEvery-th packet from the box is lost
	fromBox     int
	wg          sync.WaitGroup
}

func newUDPRelay(t *testing.T) *udpRelay {
	r := &udpRelay{t: t, boxSide: loopbackUDP(t), browserSide: loopbackUDP(t)}
	r.wg.Add(2)
	go r.pump(r.boxSide, &r.box, func() (*net.UDPConn, *net.UDPAddr) { return r.browserSide, r.browser })
	go r.pumpBrowser(r.browserSide)
	t.Cleanup(func() {
		r.boxSide.Close()
		r.mu.Lock()
		r.browserSide.Close()
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *udpRelay) pumpBrowser(c *net.UDPConn) {
	r.pump(c, &r.browser, func() (*net.UDPConn, *net.UDPAddr) { return r.boxSide, r.box })
}

// pump forwards what arrives on from to the address dest gives, from dest's socket,
// until from is closed. The sender's address is latched into *sender, as a NAT
// does: a peer's packets may leave from another socket than its candidate names.
func (r *udpRelay) pump(from *net.UDPConn, sender **net.UDPAddr, dest func() (*net.UDPConn, *net.UDPAddr)) {
	defer r.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, src, err := from.ReadFromUDP(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		down := r.down
		if !down {
			*sender = src
		}
		if from == r.boxSide && r.lossEvery > 0 {
			r.fromBox++
			down = down || r.fromBox%r.lossEvery == 0
		}
		out, to := dest()
		r.mu.Unlock()
		if down || to == nil {
			continue
		}
		out.WriteToUDP(buf[:n], to)
	}
}

// cut loses every packet from now on.
func (r *udpRelay) cut() {
	r.mu.Lock()
	r.down = true
	r.mu.Unlock()
}

// lose makes every n-th packet from the box get lost from now on.
func (r *udpRelay) lose(n int) {
	r.mu.Lock()
	r.lossEvery = n
	r.mu.Unlock()
}

// restore lets packets through again, with the box at a new address as Chromium sees
// it, as after a handover to another cell.
func (r *udpRelay) restore() {
	fresh := loopbackUDP(r.t)
	r.mu.Lock()
	old := r.browserSide
	r.browserSide = fresh
	r.down = false
	r.mu.Unlock()
	old.Close()
	r.wg.Add(1)
	go r.pumpBrowser(fresh)
}

// throughBrowserSide rewrites the box's SDP (offer or restart fragment) for Chromium:
// the box's first IPv4 host candidate is where the relay sends until the box's own
// packets say otherwise, and Chromium is given the relay's address instead of all of
// the box's candidates.
func (r *udpRelay) throughBrowserSide(sdp string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rewrite(sdp, &r.box, r.browserSide)
}

// throughBoxSide rewrites Chromium's SDP for the box in the same way.
func (r *udpRelay) throughBoxSide(sdp string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rewrite(sdp, &r.browser, r.boxSide)
}

func (r *udpRelay) rewrite(sdp string, remember **net.UDPAddr, relay *net.UDPConn) string {
	var out []string
	inserted, remembered := false, false
	for _, line := range sdpLines(sdp) {
		if !strings.HasPrefix(line, "a=candidate:") {
			out = append(out, line)
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 8 && strings.EqualFold(f[2], "udp") && f[7] == "host" && !remembered {
			if ip := net.ParseIP(f[4]).To4(); ip != nil {
				port, _ := strconv.Atoi(f[5])
				*remember = &net.UDPAddr{IP: ip, Port: port}
				remembered = true
			}
		}
		if !inserted {
			port := relay.LocalAddr().(*net.UDPAddr).Port
			out = append(out, "a=candidate:1 1 udp 2130706431 127.0.0.1 "+strconv.Itoa(port)+" typ host")
			inserted = true
		}
	}
	return strings.Join(out, "\r\n") + "\r\n"
}
