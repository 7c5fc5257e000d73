package hl7

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"lifeline/telemetry"
)

// Network endpoints in the monitor config: "tcp://HOST:PORT" makes the box LISTEN for the
// monitor's MLLP connection — the common case, since monitors and their central-station
// gateways are configured to connect out to an "HL7 server" — and
// "tcp-connect://HOST:PORT" makes the box dial a monitor or gateway that listens.
const (
	SchemeListen  = "tcp://"
	SchemeConnect = "tcp-connect://"
)

// IsNetwork reports whether a configured port is a network endpoint.
func IsNetwork(port string) bool {
	return strings.HasPrefix(port, SchemeListen) || strings.HasPrefix(port, SchemeConnect)
}

// Endpoint splits a network port into listen/dial and address.
func Endpoint(port string) (listen bool, addr string, err error) {
	switch {
	case strings.HasPrefix(port, SchemeConnect):
		addr = strings.TrimPrefix(port, SchemeConnect)
	case strings.HasPrefix(port, SchemeListen):
		listen, addr = true, strings.TrimPrefix(port, SchemeListen)
	default:
		return false, "", fmt.Errorf("hl7: %q is not tcp://HOST:PORT or tcp-connect://HOST:PORT", port)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return false, "", fmt.Errorf("hl7: bad address in %q: %w", port, err)
	}
	return listen, addr, nil
}

// Dial connects to a listening monitor or gateway, bounded by ctx.
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("hl7: connect to %s: %w", addr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// Detect a monitor that vanished without FIN (power cut, cable) within a minute.
		tc.SetKeepAlive(true)
		tc.SetKeepAlivePeriod(15 * time.Second)
	}
	return c, nil
}

// ConnPort adapts a connection to telemetry.Port.
func ConnPort(c net.Conn) telemetry.Port { return telemetry.DeadlinePort(c, 2*time.Second) }
