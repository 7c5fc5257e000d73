package hl7

import (
	"context"
	"fmt"
	"net"
	"time"

	"lifeline/telemetry"
)

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
