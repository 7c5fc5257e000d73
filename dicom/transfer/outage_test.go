package transfer

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/wait"
)

// udpPath stands between box and hub on loopback as a mobile network does: it can
// drop everything for a while (an outage) and give the box a new address as seen by
// the hub (a handover or NAT rebinding: the hub sees packets from a new port, and
// what it sends to the old one is lost).
type udpPath struct {
	front *net.UDPConn
	hub   *net.UDPAddr

	mu    sync.Mutex
	until time.Time
	gen   int
	back  map[string]*backSocket
	all   []*net.UDPConn // every socket made, the replaced ones too
	shut  bool
	wg    sync.WaitGroup
}

// pathDelay is each direction's delay: a 40 ms round trip, as on 5g-urban, so that
// QUIC's probe timer backs off as far as on a real link.
const pathDelay = 20 * time.Millisecond

type backSocket struct {
	conn *net.UDPConn
	gen  int
}

func startUDPPath(t *testing.T, hubAddr string) *udpPath {
	t.Helper()
	hub, err := net.ResolveUDPAddr("udp", hubAddr)
	if err != nil {
		t.Fatal(err)
	}
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &udpPath{front: front, hub: hub, back: map[string]*backSocket{}}
	p.wg.Go(p.forward)
	t.Cleanup(func() {
		front.Close()
		p.mu.Lock()
		p.shut = true
		for _, c := range p.all {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *udpPath) addr() string { return p.front.LocalAddr().String() }

// cut drops every packet for d; readdress also makes the hub see the box at a new
// address from then on.
func (p *udpPath) cut(d time.Duration, readdress bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.until = time.Now().Add(d)
	if readdress {
		p.gen++
	}
}

func (p *udpPath) down() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Before(p.until)
}

func (p *udpPath) forward() {
	buf := make([]byte, 65536)
	for {
		n, from, err := p.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if p.down() {
			continue
		}
		p.mu.Lock()
		key := from.String()
		b := p.back[key]
		if p.shut {
			p.mu.Unlock()
			return
		}
		if b == nil || b.gen != p.gen {
			conn, err := net.DialUDP("udp", nil, p.hub)
			if err != nil {
				p.mu.Unlock()
				continue
			}
			b = &backSocket{conn: conn, gen: p.gen}
			p.back[key] = b
			p.all = append(p.all, conn)
			p.wg.Go(func() { p.backward(b, from) })
		}
		p.mu.Unlock()
		pkt := bytes.Clone(buf[:n])
		time.AfterFunc(pathDelay, func() { b.conn.Write(pkt) })
	}
}

// backward carries the hub's packets to the box, unless the box is no longer at the
// address the hub sends them to.
func (p *udpPath) backward(b *backSocket, to *net.UDPAddr) {
	buf := make([]byte, 65536)
	for {
		n, err := b.conn.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		gone := b.gen != p.gen
		p.mu.Unlock()
		if gone || p.down() {
			continue
		}
		pkt := bytes.Clone(buf[:n])
		time.AfterFunc(pathDelay, func() { p.front.WriteToUDP(pkt, to) })
	}
}

// TestOutageCostsOnlyItsLength cuts the path twice mid-transfer, once with a new box
// address as the hub sees it, on loopback with a 40 ms round trip: data must reach the
// hub again within a second of the link's return, each byte be appended once, and no
// more than the chunks in flight be sent again when the box replaces a connection.
// (Here QUIC's own probes recover about as fast; TestHandoverCostsOnlyItsLength, on
// the emulated 5G link, is the one where waiting for them costs seconds.)
func TestOutageCostsOnlyItsLength(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	path := startUDPPath(t, hub.addr)
	const chunk = 64 << 10
	cfg := ForwarderConfig{HubURL: "https://" + path.addr(), ChunkSize: chunk, NoCompression: true,
		BandwidthCap: 24_000_000, RetryMax: 10 * time.Second}
	box := newBox(t, p.enroll(t, "AMB-0018"), cfg)
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(1800), Instances: 12, Rows: 512, Columns: 512, Seed: 18}, "CT1")
	total := sumSizes(insts)
	box.start()

	for i, readdress := range []bool{false, true} {
		frac := int64(i+1) * total / 4
		wait.For(t, 30*time.Second, "a share of the study on the hub", func() bool { return hub.appendedTotal() > frac })
		const outage = 3 * time.Second
		path.cut(outage, readdress)
		back := time.Now().Add(outage)
		time.Sleep(outage / 2) // let what was on the way land
		before := hub.appendedTotal()
		wait.For(t, 20*time.Second, "data on the hub again", func() bool { return hub.appendedTotal() > before })
		late := time.Since(back)
		t.Logf("outage %d (new address: %v): data again %v after the link came back", i+1, readdress, late.Round(10*time.Millisecond))
		if late > time.Second {
			t.Errorf("outage %d (new address: %v): data resumed %v after the link came back, want within 1 s", i+1, readdress, late.Round(10*time.Millisecond))
		}
	}
	wait.For(t, 60*time.Second, "study acknowledged", func() bool { return box.queueLen() == 0 })
	checkArchived(t, hub, insts)
	if got := hub.appendedTotal(); got != total {
		t.Fatalf("hub appended %d bytes for %d bytes of instances", got, total)
	}
	fs := box.fwd.Status()
	// What is in flight at a cut: one request per parallel upload, each a chunk and, at
	// an instance's end, the small tail that rides with it (these CT slices end in one).
	if limit := 2 * int64(box.fwd.cfg.Parallel) * (chunk + box.fwd.tailFold()); fs.ResentBytes > limit || fs.RestartsFromZero != 0 {
		t.Fatalf("re-sent %d bytes over two cuts (at most %d in flight), %d restarts from zero", fs.ResentBytes, limit, fs.RestartsFromZero)
	}
}

// TestSmallTailRidesWithTheLastChunk sends CT slices of 512 KiB and a little more at
// the default chunk size: each goes in one create and one append, not a second
// append for its last kilobyte.
func TestSmallTailRidesWithTheLastChunk(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	box := newBox(t, p.enroll(t, "AMB-0019"), ForwarderConfig{HubURL: hub.url()})
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(1900), Instances: 4, Rows: 512, Columns: 512, Seed: 19}, "CT1")
	box.start()
	if s := insts[0].Size; s <= 512<<10 || s > 512<<10+box.fwd.tailFold() {
		t.Fatalf("instance of %d bytes does not end in a small tail after 512 KiB", s)
	}
	wait.For(t, 30*time.Second, "study acknowledged", func() bool { return box.queueLen() == 0 })
	checkArchived(t, hub, insts)
	// A create and an append per instance, and the study's manifest once before and
	// once after the uploads.
	if got, want := hub.requests.Load(), int64(2*len(insts)+2); got > want {
		t.Fatalf("the hub was asked %d times for %d instances, want at most %d", got, len(insts), want)
	}
}
