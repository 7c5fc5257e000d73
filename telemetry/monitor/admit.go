package monitor

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/telemetry"
)

// Why a connection to the monitor port was refused, as the reason label of
// lifeline_telemetry_refused_connections_total.
const (
	refusedStranger = "not_allowed" // its address is not in Allow
	refusedBusy     = "busy"        // a monitor is connected and sending
)

// refusalLogEvery is how often at most a refused connection is logged; the ones in
// between are counted in the next line, so that a scan or a flood of connections
// cannot fill the box's log.
const refusalLogEvery = time.Minute

// refusalShown is how long the last refusal stays in the service's health detail.
const refusalShown = 15 * time.Minute

// ParseAllow parses the addresses monitors may connect from: each an IP address
// ("10.20.0.15", a single host) or a prefix ("10.20.0.0/24"). It is the one parser of
// the setting, for the config check and for New.
func ParseAllow(entries []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a prefix such as 10.20.0.0/24", e)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// CheckAllow refuses an allow-list where nothing listens, and a listener beyond
// loopback without one: whoever reaches that port could otherwise feed the crew and
// the hospital a patient's vitals. New applies it; the config check names the key.
func CheckAllow(ep telemetry.Endpoint, allow []netip.Prefix) error {
	if ep.Kind != telemetry.EndpointListen {
		if len(allow) > 0 {
			return fmt.Errorf("an allow-list is only for a %sHOST:PORT port the box listens on, not %s", telemetry.SchemeListen, ep)
		}
		return nil
	}
	host, _, _ := net.SplitHostPort(ep.Addr)
	if len(allow) == 0 && !loopbackHost(host) {
		return fmt.Errorf("%s listens beyond loopback: list the monitors' addresses that may connect (allow)", ep)
	}
	return nil
}

// loopbackHost reports whether host names only this machine; an empty host or
// 0.0.0.0 is every interface.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// admits reports whether a connection from a may be the monitor: from an address in
// Allow, or from this machine when Allow is empty.
func (r *Reader) admits(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	if len(r.cfg.Allow) == 0 {
		return ip.IsLoopback()
	}
	for _, p := range r.cfg.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// refusals counts and reports refused connections.
type refusals struct {
	metric *prometheus.CounterVec

	mu         sync.Mutex
	lastLog    time.Time
	suppressed int
}

func newRefusals(monitor string) *refusals {
	return &refusals{
		metric: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "lifeline_telemetry_refused_connections_total",
			Help:        "Connections to a monitor port refused: from an address not allowed, or while a monitor was connected and sending.",
			ConstLabels: prometheus.Labels{"monitor": monitor},
		}, []string{"reason"}),
	}
}

// refuse counts c, closes it, shows it in the reader's status and health, and logs
// it at most once per refusalLogEvery. The count comes before the close so that
// whoever sees the connection end also sees it counted.
func (r *Reader) refuse(c net.Conn, reason string) {
	remote := c.RemoteAddr().String()
	r.refused.Add(1)
	c.Close()
	why := "not in the monitor's allow-list"
	if reason == refusedBusy {
		why = "a monitor is connected and sending"
	}
	now := time.Now()
	r.refusals.metric.WithLabelValues(reason).Inc()
	r.mu.Lock()
	r.status.LastRefused = fmt.Sprintf("%s: %s", remote, why)
	r.status.LastRefusedAt = now
	var lastErr error
	if r.status.State == StateDisconnected && r.status.LastError != "" {
		lastErr = errors.New(r.status.LastError)
	}
	r.mu.Unlock()
	r.report(lastErr)

	rf := r.refusals
	rf.mu.Lock()
	if now.Sub(rf.lastLog) < refusalLogEvery {
		rf.suppressed++
		rf.mu.Unlock()
		return
	}
	suppressed := rf.suppressed
	rf.lastLog, rf.suppressed = now, 0
	rf.mu.Unlock()
	r.log.Warn("monitor connection refused", "remote", remote, "why", why, "refused_since_last_line", suppressed)
}

// refusalNote is what the health detail adds while a refusal is recent, so that the
// crew's status page says someone tried to be the monitor.
func refusalNote(st Status, now time.Time) string {
	if st.Refused == 0 || now.Sub(st.LastRefusedAt) > refusalShown {
		return ""
	}
	return fmt.Sprintf("; refused %d connection(s), the last at %s from %s", st.Refused, st.LastRefusedAt.Format("15:04:05"), st.LastRefused)
}
