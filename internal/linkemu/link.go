package linkemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Side names one end of the link.
type Side int

// The two ends of a link.
const (
	Box Side = iota // the edge box, behind the (up)link
	Hub             // the hospital / cloud side
)

func (s Side) String() string {
	if s == Box {
		return "box"
	}
	return "hub"
}

// Addresses inside the namespaces. Every link has its own pair of namespaces, so all
// links use the same ones: the box's come from boxNet (it gets the next one after an
// address change), the hub's is fixed.
var (
	boxNet   = netip.MustParseAddr("10.201.0.0")
	hubAddr  = netip.MustParseAddr("10.202.0.1")
	firstBox = 2
)

// Options tune a link beyond its Profile.
type Options struct {
	// Logger receives the link's events (outages, address changes, errors). Default
	// slog.Default().
	Logger *slog.Logger
	// Registerer, if set, gets the link's lifeline_linkemu_* metrics, labelled
	// link=Name (links sharing a registry need different names); Close unregisters them.
	Registerer prometheus.Registerer
	// Seed makes loss, jitter and corruption repeatable; 0 picks a random seed.
	Seed uint64
	// Name labels logs and metrics; default the profile's name.
	Name string
}

// Link is a running emulated link: two network namespaces, "box" and "hub", each with
// one TUN device, and a shaper in this process that carries IP packets between them.
// Its methods are safe for concurrent use.
type Link struct {
	profile      Profile
	name         string
	log          *slog.Logger
	boxNS, hubNS string
	boxTUN       *os.File
	hubTUN       *os.File
	up, down     *pump

	addrMu   sync.Mutex // serialises address changes
	box      atomic.Pointer[netip.Addr]
	nextHost int

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	actions   chan action
	stopWatch func() bool
	reg       prometheus.Registerer
	collector prometheus.Collector
	closeOnce sync.Once
	closeErr  error
}

// Start builds the namespaces and devices of a link shaped like p and starts carrying
// packets. The link runs until Close or until ctx ends; either way the namespaces are
// deleted. It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and ip(8). Namespaces left
// behind by dead processes are deleted first.
func Start(ctx context.Context, p Profile, opts Options) (*Link, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("linkemu: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Name == "" {
		opts.Name = p.Name
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("linkemu: ip(8) is not installed (Debian package iproute2)")
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	sweepStale(opts.Logger)

	l := &Link{profile: p, name: opts.Name, nextHost: firstBox, actions: make(chan action, 16)}
	l.boxNS, l.hubNS = newNSNames()
	l.log = opts.Logger.With("link", l.name, "box_netns", l.boxNS)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	if err := l.build(); err != nil {
		l.teardown()
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6c69666531696e65))
	l.up = newPump(Uplink, l.boxTUN, l.hubTUN,
		NewShaper(p.Up, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))),
		rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), l.BoxAddr, l.log)
	l.down = newPump(Downlink, l.hubTUN, l.boxTUN,
		NewShaper(p.Down, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))),
		rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), l.BoxAddr, l.log)
	if opts.Registerer != nil {
		c := newCollector(l)
		if err := opts.Registerer.Register(c); err != nil {
			l.teardown()
			return nil, fmt.Errorf("linkemu: register metrics: %w", err)
		}
		l.reg, l.collector = opts.Registerer, c
	}
	for _, pm := range []*pump{l.up, l.down} {
		l.wg.Add(2)
		go func() { defer l.wg.Done(); pm.readLoop(l.ctx) }()
		go func() { defer l.wg.Done(); pm.deliverLoop(l.ctx) }()
	}
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.control(time.Now()) }()
	l.stopWatch = context.AfterFunc(ctx, func() { l.Close() })
	l.log.Info("linkemu: link up", "profile", p.Name, "box", l.BoxAddr(), "hub", hubAddr,
		"hub_netns", l.hubNS, "up_bps", p.Up.RateBps, "down_bps", p.Down.RateBps, "rtt", p.RTT(),
		"loss_up", p.Up.Loss, "loss_down", p.Down.Loss, "seed", seed)
	return l, nil
}

// build creates both namespaces, their TUN devices, addresses and routes.
func (l *Link) build() error {
	for _, ns := range []string{l.boxNS, l.hubNS} {
		if err := createNS(ns); err != nil {
			return fmt.Errorf("linkemu: create network namespace (needs root): %w", err)
		}
		// No IPv6: its router solicitations would cross the link and disturb counts.
		for _, k := range []string{"all", "default"} {
			if err := writeSysctl(ns, "net/ipv6/conf/"+k+"/disable_ipv6", "1"); err != nil {
				l.log.Debug("linkemu: cannot disable IPv6", "netns", ns, "err", err)
			}
		}
		if err := ipCmd("-n", ns, "link", "set", "lo", "up"); err != nil {
			return fmt.Errorf("linkemu: %w", err)
		}
	}
	var err error
	if l.boxTUN, err = openTUN(l.boxNS); err != nil {
		return err
	}
	if l.hubTUN, err = openTUN(l.hubNS); err != nil {
		return err
	}
	box := l.hostAddr(l.nextHost)
	l.nextHost++
	l.box.Store(&box)
	steps := [][]string{
		{"-n", l.boxNS, "addr", "add", box.String() + "/32", "dev", tunName},
		{"-n", l.boxNS, "link", "set", tunName, "mtu", "1500", "txqueuelen", "1000", "up"},
		{"-n", l.boxNS, "route", "add", "default", "dev", tunName},
		{"-n", l.hubNS, "addr", "add", hubAddr.String() + "/32", "dev", tunName},
		{"-n", l.hubNS, "link", "set", tunName, "mtu", "1500", "txqueuelen", "1000", "up"},
		{"-n", l.hubNS, "route", "add", "default", "dev", tunName},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return fmt.Errorf("linkemu: configure link: %w", err)
		}
	}
	return nil
}

// hostAddr returns the n-th address of the box network.
func (l *Link) hostAddr(n int) netip.Addr {
	b := boxNet.As4()
	b[2], b[3] = byte(n>>8), byte(n)
	return netip.AddrFrom4(b)
}

// Profile returns the profile the link started with.
func (l *Link) Profile() Profile { return l.profile }

// BoxAddr returns the box's current address (it changes with ChangeBoxAddress).
func (l *Link) BoxAddr() netip.Addr { return *l.box.Load() }

// HubAddr returns the hub's address; it never changes.
func (l *Link) HubAddr() netip.Addr { return hubAddr }

// Namespace returns the name of side's network namespace, for `ip netns exec NAME`.
func (l *Link) Namespace(side Side) string {
	if side == Box {
		return l.boxNS
	}
	return l.hubNS
}

// InBox runs fn on an OS thread inside the box namespace and returns its error.
// Sockets fn creates (net.Listen, net.Dial, net.ListenUDP, …) stay in the box namespace
// when used afterwards from any goroutine. Goroutines fn starts are not inside it, and
// name lookups other than IP literals may run elsewhere: create sockets directly in fn.
func (l *Link) InBox(fn func() error) error { return l.In(Box, fn) }

// InHub is InBox for the hub namespace.
func (l *Link) InHub(fn func() error) error { return l.In(Hub, fn) }

// In runs fn inside side's namespace; see InBox.
func (l *Link) In(side Side, fn func() error) error {
	if l.ctx.Err() != nil {
		return errClosed
	}
	return inNS(l.Namespace(side), fn)
}

// Command returns a command that runs name inside side's namespace (through
// `ip netns exec`, which execs name in place: signals sent to the process reach it).
// Stop such commands before Close.
func (l *Link) Command(side Side, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.Namespace(side), name}, args...)...)
}

// CommandContext is Command with a context that kills the process when it ends.
func (l *Link) CommandContext(ctx context.Context, side Side, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.Namespace(side), name}, args...)...)
}

// SetDown takes both directions down (everything sent is silently lost, as in a radio
// outage) until SetDown(false); SetDown(false) also ends an Outage early.
func (l *Link) SetDown(down bool) {
	for _, p := range []*pump{l.up, l.down} {
		p.withShaper(func(s *Shaper) { s.SetDown(down) })
	}
	l.log.Info("linkemu: link set down", "down", down)
}

// Outage takes the link down for d from now and returns at once.
func (l *Link) Outage(d time.Duration) {
	until := time.Now().Add(d)
	for _, p := range []*pump{l.up, l.down} {
		p.withShaper(func(s *Shaper) { s.OutageUntil(until) })
	}
	l.log.Info("linkemu: outage", "for", d)
}

// Handover takes the link down for d from now and gives the box a new address just
// before it comes back, as a 5G handover or a modem re-attach does. It returns at once;
// the address change is logged, and BoxAddr returns the new one once it is made.
func (l *Link) Handover(d time.Duration) {
	now := time.Now()
	l.Outage(d)
	select {
	case l.actions <- action{at: now.Add(readdressAt(d)), kind: actReaddress}:
	case <-l.ctx.Done():
	}
}

// readdressAt is when, within an outage of d, the box gets its new address: shortly
// before the end, so that the address is in place when the radio comes back.
func readdressAt(d time.Duration) time.Duration {
	if d > 200*time.Millisecond {
		return d - 100*time.Millisecond
	}
	return d / 2
}

// ChangeBoxAddress gives the box its next address now: the new one is added to the box's
// TUN device, the old one removed. From then on the network drops packets sent from or
// to the old address. UDP sockets bound to the wildcard address send from the new one
// (QUIC sees a migration); TCP connections on the old address stall, as on a real
// network. It returns the new address.
func (l *Link) ChangeBoxAddress() (netip.Addr, error) {
	l.addrMu.Lock()
	defer l.addrMu.Unlock()
	if l.ctx.Err() != nil {
		return netip.Addr{}, errClosed
	}
	old := l.BoxAddr()
	next := l.hostAddr(l.nextHost)
	l.nextHost++
	if err := ipCmd("-n", l.boxNS, "addr", "add", next.String()+"/32", "dev", tunName); err != nil {
		return old, fmt.Errorf("linkemu: change box address: %w", err)
	}
	l.box.Store(&next)
	// Added before the old one goes, so that the device never has no address: the
	// kernel would flush its routes.
	if err := ipCmd("-n", l.boxNS, "addr", "del", old.String()+"/32", "dev", tunName); err != nil {
		return next, fmt.Errorf("linkemu: change box address: %w", err)
	}
	if err := ipCmd("-n", l.boxNS, "route", "replace", "default", "dev", tunName); err != nil {
		return next, fmt.Errorf("linkemu: change box address: %w", err)
	}
	l.log.Info("linkemu: box address changed", "old", old, "new", next)
	return next, nil
}

// SetShape changes one direction's shape from now on.
func (l *Link) SetShape(d Direction, s Shape) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("linkemu: %v: %w", d, err)
	}
	l.pump(d).withShaper(func(sh *Shaper) { sh.SetShape(s) })
	l.log.Info("linkemu: shape changed", "direction", d.String(), "bps", s.RateBps, "delay", s.Delay, "loss", s.Loss)
	return nil
}

// CorruptNth flips one bit in the TCP or UDP payload of the n-th packet carrying a
// payload in direction d from now (n ≥ 1), once. Without fixChecksum the receiver's
// kernel finds the damage and drops the packet, as it would a corrupted frame; with it
// the checksum is recomputed and the damage reaches the application (as past a faulty
// middlebox), which is what end-to-end digests are for. QUIC's packet protection
// catches it either way.
func (l *Link) CorruptNth(d Direction, n int, fixChecksum bool) {
	p := l.pump(d)
	p.mu.Lock()
	p.corruptIn, p.corruptFix = max(n, 1), fixChecksum
	p.mu.Unlock()
}

func (l *Link) pump(d Direction) *pump {
	if d == Uplink {
		return l.up
	}
	return l.down
}

// Stats returns what both directions did so far.
func (l *Link) Stats() Stats { return Stats{Up: l.up.stats(), Down: l.down.stats()} }

// Close stops carrying packets, closes the TUN devices and deletes both namespaces.
// Processes still running inside them keep their namespace, unnamed, until they exit.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		if l.stopWatch != nil {
			l.stopWatch()
		}
		st := l.Stats()
		l.closeErr = l.teardown()
		l.log.Info("linkemu: link closed",
			"up_packets", st.Up.Packets, "up_dropped", st.Up.Dropped(),
			"down_packets", st.Down.Packets, "down_dropped", st.Down.Dropped())
	})
	return l.closeErr
}

// teardown undoes whatever of Start happened.
func (l *Link) teardown() error {
	l.cancel()
	// Wait for an address change under way: it needs the devices.
	l.addrMu.Lock()
	defer l.addrMu.Unlock()
	if l.reg != nil {
		l.reg.Unregister(l.collector)
	}
	var errs []error
	for _, f := range []*os.File{l.boxTUN, l.hubTUN} {
		if f != nil {
			f.Close() // wakes the readers
		}
	}
	l.wg.Wait()
	for _, ns := range []string{l.boxNS, l.hubNS} {
		if _, err := os.Stat(nsDir + "/" + ns); err != nil {
			continue
		}
		if err := deleteNS(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("linkemu: close: %w", err)
	}
	return nil
}

// HTTPClient returns an HTTP client whose connections are made inside side's
// namespace, for a test or benchmark that talks to a process living there.
func (l *Link) HTTPClient(side Side, timeout time.Duration) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := l.In(side, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dial}}
}
