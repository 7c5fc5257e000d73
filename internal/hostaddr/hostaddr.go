// Package hostaddr tells when the box's own addresses change: a 5G handover or a
// modem re-attach gives it a new one, and connections bound to the old one stall
// without an error. The forwarder's QUIC connections and the live stream's ICE
// restarts both watch for it.
package hostaddr

import (
	"hash/fnv"
	"net"
	"slices"
)

// Fingerprint sums up the machine's interface addresses, loopback and link-local
// aside, so that two readings differ exactly when an address was added or removed.
// It is 0 when the interfaces cannot be read.
func Fingerprint() uint64 {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return 0
	}
	var ips []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			ips = append(ips, ipn.IP.String())
		}
	}
	slices.Sort(ips)
	h := fnv.New64a()
	for _, ip := range ips {
		h.Write([]byte(ip))
		h.Write([]byte{0})
	}
	return h.Sum64()
}
