// Package linkemu emulates the box's mobile uplink (5G, 4G, handovers, tunnels) in user
// space, for tests and benchmarks. Kernel netem is not available on our machines, so a
// link is two network namespaces, "box" and "hub", each with one TUN device, and a Go
// shaper in the calling process that reads IP packets from one TUN and writes them to the
// other, per direction applying a rate limit with a tail-dropping modem buffer, delay and
// jitter (in order unless asked), random and Gilbert–Elliott burst loss, outages, box
// address changes and a one-bit corruption hook. Everything that crosses (TCP for DICOM
// C-STORE, QUIC, WebRTC) crosses the very same link, so comparisons are fair.
//
// Start a link with a profile from DESIGN.md (or your own Profile, e.g. scaled down for
// a short test) and create sockets inside its namespaces from the same process:
//
//	peers.NeedRoot(t)
//	l, err := linkemu.Start(ctx, linkemu.FiveGUrban(), linkemu.Options{Logger: log})
//	if err != nil { … }
//	t.Cleanup(func() { l.Close() })
//	var ln net.Listener
//	l.InHub(func() (err error) { ln, err = net.Listen("tcp", l.HubAddr().String()+":4242"); return })
//	var pc net.PacketConn
//	l.InBox(func() (err error) { pc, err = net.ListenUDP("udp4", &net.UDPAddr{}); return })
//	// quic.Dial(ctx, pc, hubUDPAddr, …) now crosses the shaped link.
//	cmd := l.Command(linkemu.Hub, "Orthanc", cfg) // a real peer inside the hub namespace
//
// The box starts at 10.201.0.2 and moves to the next address at each ChangeBoxAddress
// (or Handover, or a profile outage with NewAddress); the hub is always 10.202.0.1.
// Programs inside a namespace must listen on its address or on the wildcard: each
// namespace has its own loopback. Outage, Handover and SetDown act on both directions
// and return at once; Stats counts each direction's deliveries and drops by reason.
//
// Cleanup: Close (or the end of Start's context) deletes both namespaces; TUN devices die
// with the process; namespaces left by a killed process are deleted by the next Start in
// any process (their names carry the owner's PID and start time).
//
// Fidelity: packets are stamped when the shaper reads them, so on a machine whose CPUs
// are saturated the shaper's own scheduling delay adds to the delay and can cost a few
// per cent of the rate; Go's timers add up to ±0.5 ms per direction. See bench_test.go
// (build tag bench) for throughput against tc tbf and the shaper's CPU use.
package linkemu
