package telemetry

import (
	"fmt"
	"net"
	"strings"
)

// Schemes of a network endpoint in a monitor's port setting. "tcp://HOST:PORT" makes
// the box LISTEN for the monitor's MLLP connection (the common case: monitors and
// their central-station gateways are set up to connect out to an "HL7 server");
// "tcp-connect://HOST:PORT" makes the box dial a monitor or gateway that listens.
const (
	SchemeListen  = "tcp://"
	SchemeConnect = "tcp-connect://"
)

// EndpointKind tells how the box reaches a monitor.
type EndpointKind int

// Endpoint kinds.
const (
	EndpointSerial EndpointKind = iota // a serial device (or pty) the box opens
	EndpointListen                     // a TCP address the box listens on for the monitor
	EndpointDial                       // a TCP address the box connects to
)

// Endpoint is where the box reaches one monitor, parsed from its port setting.
type Endpoint struct {
	Kind EndpointKind
	// Device is the serial device path (EndpointSerial only).
	Device string
	// Addr is HOST:PORT (EndpointListen and EndpointDial only).
	Addr string
}

// Network reports whether the endpoint is a TCP one rather than a serial device.
func (e Endpoint) Network() bool { return e.Kind != EndpointSerial }

// String returns the endpoint as it is written in the config.
func (e Endpoint) String() string {
	switch e.Kind {
	case EndpointListen:
		return SchemeListen + e.Addr
	case EndpointDial:
		return SchemeConnect + e.Addr
	}
	return e.Device
}

// ParseEndpoint parses a monitor's port setting: a serial device such as /dev/ttyUSB0,
// tcp://HOST:PORT or tcp-connect://HOST:PORT. It is the one place that knows these
// forms; the config check, the reader, the self-test and the simulator all use it.
func ParseEndpoint(port string) (Endpoint, error) {
	if port == "" {
		return Endpoint{}, fmt.Errorf("monitor port is empty: want a serial device such as /dev/ttyUSB0, %sHOST:PORT or %sHOST:PORT", SchemeListen, SchemeConnect)
	}
	var e Endpoint
	switch {
	case strings.HasPrefix(port, SchemeConnect):
		e = Endpoint{Kind: EndpointDial, Addr: port[len(SchemeConnect):]}
	case strings.HasPrefix(port, SchemeListen):
		e = Endpoint{Kind: EndpointListen, Addr: port[len(SchemeListen):]}
	case strings.Contains(port, "://"):
		return Endpoint{}, fmt.Errorf("monitor port %q: unknown scheme; use a serial device, %sHOST:PORT or %sHOST:PORT", port, SchemeListen, SchemeConnect)
	default:
		return Endpoint{Kind: EndpointSerial, Device: port}, nil
	}
	host, p, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return Endpoint{}, fmt.Errorf("monitor port %q: %w", port, err)
	}
	if p == "" || (e.Kind == EndpointDial && host == "") {
		return Endpoint{}, fmt.Errorf("monitor port %q: want HOST:PORT after the scheme", port)
	}
	return e, nil
}
