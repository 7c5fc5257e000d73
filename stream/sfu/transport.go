package sfu

import (
	"fmt"
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// transport is what every session shares: the one UDP port, the ICE-TCP listener,
// and the two pion APIs configured as an ICE-lite server on them.
type transport struct {
	udp       net.PacketConn
	tcp       net.Listener // nil when ICE-TCP is off
	udpMux    ice.UDPMux
	tcpMux    ice.TCPMux
	publisher *webrtc.API
	viewer    *webrtc.API
}

// openTransport binds the media sockets and builds the APIs.
func openTransport(cfg Config) (*transport, error) {
	udp, err := net.ListenPacket("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("sfu: media UDP %s: %w", cfg.Listen, err)
	}
	t := &transport{udp: udp, udpMux: webrtc.NewICEUDPMux(nil, udp)}
	var se webrtc.SettingEngine
	// The hub has a fixed, reachable address: as an ICE-lite agent it only answers
	// the checks of boxes and browsers, which are full agents.
	se.SetLite(true)
	se.SetIncludeLoopbackCandidate(true)
	// A box in a tunnel is silent for 30 s: its session must outlive that so the
	// box can restart ICE on it.
	se.SetICETimeouts(5*time.Second, cfg.SessionTimeout, 2*time.Second)
	se.SetICEUDPMux(t.udpMux)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.TCPListen != "off" {
		t.tcp, err = net.Listen("tcp", cfg.TCPListen)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("sfu: ICE-TCP %s: %w", cfg.TCPListen, err)
		}
		t.tcpMux = webrtc.NewICETCPMux(nil, t.tcp, 8)
		se.SetICETCPMux(t.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	if err := announce(&se, cfg); err != nil {
		t.close()
		return nil, err
	}
	t.publisher, t.viewer, err = newAPIs(se)
	if err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// announce keeps the host candidates to the listening address, or replaces them by
// the configured addresses when those differ (1:1 NAT, a wildcard listener).
func announce(se *webrtc.SettingEngine, cfg Config) error {
	host, _, _ := net.SplitHostPort(cfg.Listen)
	listenIP := net.ParseIP(host)
	if listenIP != nil && !listenIP.IsUnspecified() {
		se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(listenIP) })
	}
	if len(cfg.Addresses) == 1 && cfg.Addresses[0] == host {
		return nil
	}
	err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
		External: cfg.Addresses, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
	})
	if err != nil {
		return fmt.Errorf("sfu: announce %v: %w", cfg.Addresses, err)
	}
	return nil
}

// udpAddr and tcpAddr are where media is served, for the status.
func (t *transport) udpAddr() string { return t.udp.LocalAddr().String() }

func (t *transport) tcpAddr() string {
	if t.tcp == nil {
		return ""
	}
	return t.tcp.Addr().String()
}

func (t *transport) close() {
	if t.udpMux != nil {
		t.udpMux.Close()
	}
	if t.tcpMux != nil {
		t.tcpMux.Close()
	}
	t.udp.Close()
	if t.tcp != nil {
		t.tcp.Close()
	}
}
