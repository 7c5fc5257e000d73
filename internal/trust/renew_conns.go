package trust

import (
	"context"
	"sync"
	"time"
)

// A renewal replaces a device's certificate, and the hub refuses the old one from then
// on, on every new connection. A connection the box made before the renewal was
// authenticated with the old certificate and cannot change it (TLS 1.3 has no
// renegotiation); refusing its requests would stall the box's uploads until the
// connection ends, which a QUIC connection kept alive on a good link need not do for
// days. So the hub remembers from which remote addresses (one per connection) it saw
// the current certificate, and after a renewal keeps serving those connections with
// the old certificate until it runs out. Revocation still refuses them at once, since
// the device must be active; a new connection with the old certificate is refused as
// replaced.

// maxConnsPerDevice bounds what the hub remembers of one device's connections; a box
// keeps a handful (uploads, live stream, reports).
const maxConnsPerDevice = 32

// deviceConns is what the hub remembers of one device's connections.
type deviceConns struct {
	serial string               // the certificate they were seen with
	seen   map[string]time.Time // remote address → last request
	// After a renewal: the replaced certificate and the connections made with it.
	prevSerial string
	prevAddrs  map[string]bool
	prevUntil  time.Time // the replaced certificate's expiry
}

// connections remembers the devices' connections for renewals; the zero value is
// ready.
type connections struct {
	mu       sync.Mutex
	byDevice map[string]*deviceConns
}

// seen notes a request from device with its current certificate serial over the
// connection from addr.
func (c *connections) seen(device, serial, addr string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byDevice == nil {
		c.byDevice = map[string]*deviceConns{}
	}
	d := c.byDevice[device]
	if d == nil {
		d = &deviceConns{}
		c.byDevice[device] = d
	}
	if d.serial != serial {
		d.serial, d.seen = serial, map[string]time.Time{}
	}
	if _, ok := d.seen[addr]; !ok && len(d.seen) >= maxConnsPerDevice {
		oldest, at := "", now
		for a, t := range d.seen {
			if t.Before(at) {
				oldest, at = a, t
			}
		}
		delete(d.seen, oldest)
	}
	d.seen[addr] = now
}

// renewed notes that device's certificate oldSerial, which runs out at until, was
// replaced: the connections seen with it stay served.
func (c *connections) renewed(device, oldSerial string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.byDevice[device]
	if d == nil || d.serial != oldSerial {
		return // no connection of the old certificate to keep
	}
	d.prevSerial, d.prevUntil, d.prevAddrs = oldSerial, until, map[string]bool{}
	for a := range d.seen {
		d.prevAddrs[a] = true
	}
	d.serial, d.seen = "", map[string]time.Time{}
}

// madeBefore reports whether a request with serial from addr comes over a connection
// that device made with its certificate before a renewal replaced it.
func (c *connections) madeBefore(device, serial, addr string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.byDevice[device]
	return d != nil && d.prevSerial == serial && d.prevAddrs[addr] && now.Before(d.prevUntil)
}

// keptAfterRenewal reports whether a request refused for its serial may still be
// served: it comes over a connection made before the renewal that replaced that
// certificate, and the device is still active.
func (r *Registry) keptAfterRenewal(ctx context.Context, device, serial, addr string) bool {
	if !r.conns.madeBefore(device, serial, addr, r.now()) {
		return false
	}
	d, err := r.state.Device(ctx, device)
	return err == nil && d.State == StateActive
}
