package transfer

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/dicom/spool"
	"lifeline/internal/linkemu"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// TestUploadsGoOverTCPWhereUDPIsBlocked puts the hub behind a firewall that lets TCP
// through and drops UDP to its port (an nftables rule in the hub's namespace of an
// emulated 5g-urban link). The box process finds its QUIC handshakes failing where a
// TCP one works, and forwards over HTTPS on TCP: the hub accepts no QUIC connection
// while a quarter of the study arrives. Then the rule goes, and the box is back on
// QUIC at its next QUIC retry (2 s here, a minute by default). The study arrives
// whole, each byte appended once, across a drop of the link while on TCP.
func TestUploadsGoOverTCPWhereUDPIsBlocked(t *testing.T) {
	peers.NeedRoot(t)
	peers.Need(t, "ip")
	peers.Need(t, "nft")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	link, err := linkemu.Start(ctx, linkemu.FiveGUrban(), linkemu.Options{Logger: testLog(t), Seed: 17})
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	hubAddr := link.HubAddr().String()
	p := newPKI(t, hubAddr)
	hub := startHubIn(t, p, nil, link.InHub, hubAddr+":0")
	port := netip.MustParseAddrPort(hub.addr).Port()

	// The rule lives in a table of the test's own, in the hub's namespace, which
	// the link deletes with it.
	const table = "lifeline_udp_block"
	nft := func(stdin string, args ...string) {
		t.Helper()
		cmd := link.Command(linkemu.Hub, "nft", args...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v: %s", args, err, out)
		}
	}
	nft(fmt.Sprintf("table inet %s {\n chain input {\n  type filter hook input priority 0; policy accept;\n  udp dport %d drop\n }\n}\n", table, port), "-f", "-")

	storePath, idDir, insts, total := queueForBoxProcess(t, p, "AMB-0170",
		pacstest.StudySpec{StudyUID: uid(170), Instances: 48, Rows: 512, Columns: 512, Seed: 170})
	var out bytes.Buffer
	box := startBoxProcess(t, link, storePath, idDir, hub.addr, &out, envBoxQUICRetry+"=2s")

	start := time.Now()
	wait.For(t, 2*time.Minute, "a quarter of the study on the hub", func() bool { return hub.appendedTotal() > total/4 })
	if n := hub.server.Stats().Connections; n != 0 {
		t.Fatalf("the hub accepted %d QUIC connections through a firewall that drops UDP", n)
	}
	t.Logf("a quarter of the study (%d bytes) over HTTPS on TCP, %v after the box started", hub.appendedTotal(), time.Since(start).Round(10*time.Millisecond))

	// A drop of the link shorter than the connections' user timeout leaves the box on
	// TCP: its connections retransmit across it and carry on when the link is back,
	// and no QUIC connection is made meanwhile.
	link.SetDown(true)
	time.Sleep(3 * time.Second)
	link.SetDown(false)
	restored, before := time.Now(), hub.appendedTotal()
	wait.For(t, time.Minute, "uploads resumed over TCP after the link came back", func() bool { return hub.appendedTotal() > before+1<<20 })
	t.Logf("after a 3 s drop, 1 MiB more over TCP %v after the link came back", time.Since(restored).Round(10*time.Millisecond))
	if n := hub.server.Stats().Connections; n != 0 {
		t.Fatalf("the hub accepted %d QUIC connections through a firewall that drops UDP", n)
	}

	nft("", "delete", "table", "inet", table)
	unblocked := time.Now()
	wait.For(t, 30*time.Second, "the box back on QUIC", func() bool { return hub.server.Stats().Connections > 0 })
	back, onTCP := time.Since(unblocked), hub.appendedTotal()
	t.Logf("QUIC again %v after UDP was let through; %d of %d bytes had arrived", back.Round(10*time.Millisecond), onTCP, total)

	select {
	case err := <-box.exited:
		if err != nil {
			t.Fatalf("box process: %v\n%s", err, out.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("box did not finish the study")
	}
	checkArchived(t, hub, insts)
	if got := hub.appendedTotal(); got != total {
		t.Fatalf("hub appended %d bytes for %d bytes of instances", got, total)
	}
	if !strings.Contains(out.String(), "transport quic") {
		t.Fatalf("the box did not end on QUIC:\n%s", out.String())
	}
}

// TestEveryRequestWorksOverTCP puts a box's client on HTTPS over TCP, as after the
// move from a blocked QUIC, and makes each request of the protocol: a creation with
// its first chunk, the offset (HEAD, which HTTP/3 marks for 0-RTT), an append that
// completes the instance, and the manifest. The hub answers each over TCP.
func TestEveryRequestWorksOverTCP(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	c := newTestClient(t, hub.url(), p.enroll(t, "AMB-0171"))
	c.overTCP.Store(true)
	insts, err := pacstest.WriteStudy(t.TempDir(), pacstest.StudySpec{StudyUID: uid(171), Instances: 1, Rows: 128, Columns: 128, Seed: 171})
	if err != nil {
		t.Fatal(err)
	}
	in := insts[0]
	data, err := os.ReadFile(in.Path)
	if err != nil {
		t.Fatal(err)
	}
	inst := spool.Instance{SOPInstanceUID: in.SOPInstanceUID, StudyUID: in.StudyUID, Size: in.Size, SHA256: in.SHA256}
	ctx := context.Background()
	const first = 8 << 10
	st, wire, err := c.createWith(ctx, inst, data[:first], false, true)
	if err != nil || st.offset != first || wire == 0 {
		t.Fatalf("creation with upload over TCP: %+v, %d bytes sent, %v", st, wire, err)
	}
	if st, err = c.offset(ctx, st.url); err != nil || st.offset != first {
		t.Fatalf("offset over TCP: %+v, %v", st, err)
	}
	if st, _, err = c.appendChunk(ctx, in.SOPInstanceUID, st.url, first, data[first:], true, true); err != nil || !st.complete {
		t.Fatalf("append over TCP: %+v, %v", st, err)
	}
	m := Manifest{StudyUID: in.StudyUID, Instances: []ManifestInstance{{SOPInstanceUID: in.SOPInstanceUID, Size: in.Size, SHA256: in.SHA256}}}
	if rc, err := c.putManifest(ctx, m); err != nil || !rc.Complete {
		t.Fatalf("manifest over TCP: %+v, %v", rc, err)
	}
	checkArchived(t, hub, insts)
	if n := hub.server.Stats().Connections; n != 0 || c.transport() != "tcp" || c.connections() == 0 {
		t.Fatalf("the requests went over %s (%d connections; the hub accepted %d over QUIC)", c.transport(), c.connections(), n)
	}
}
