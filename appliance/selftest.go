package appliance

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.bug.st/serial/enumerator"

	"lifeline/telemetry"
)

// Check is one result of the boot self-test, shown on the status page so that a crew
// sees at a glance whether the box is ready.
type Check struct {
	Name   string    `json:"name"`
	Result string    `json:"result"` // "ok", "warn" or "fail"
	Detail string    `json:"detail"`
	At     time.Time `json:"at"`
}

func check(name, result, format string, args ...any) Check {
	return Check{Name: name, Result: result, Detail: fmt.Sprintf(format, args...), At: time.Now()}
}

// checkDisk reports the free space where the process keeps its data.
func checkDisk(dir string, warnBelowMB int) Check {
	free, err := FreeBytes(dir)
	if err != nil {
		return check("disk", "fail", "cannot read free space of %s: %v", dir, err)
	}
	mb := free >> 20
	if int(mb) < warnBelowMB {
		return check("disk", "warn", "%d MB free in %s (below %d MB: new studies will be refused)", mb, dir, warnBelowMB)
	}
	return check("disk", "ok", "%d MB free in %s", mb, dir)
}

// FreeBytes returns the bytes available to this process on the file system of dir.
func FreeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// checkClock catches a box whose real-time clock lost power: studies and vitals would
// carry wrong times.
func checkClock(now time.Time) Check {
	if now.Year() < 2025 {
		return check("clock", "fail", "system time %s is before 2025: the real-time clock is not set", now.Format(time.RFC3339))
	}
	return check("clock", "ok", "system time %s", now.UTC().Format(time.RFC3339))
}

// checkSerialPorts lists the serial ports the box can see and whether the configured
// ones are among them. Network monitors (tcp://, tcp-connect://) are not serial ports
// and are left out.
func checkSerialPorts(configured []string) Check {
	ports, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return check("serial", "warn", "cannot list serial ports: %v", err)
	}
	var found []string
	present := map[string]bool{}
	for _, p := range ports {
		desc := p.Name
		if p.IsUSB {
			desc += fmt.Sprintf(" (USB %s:%s %s)", p.VID, p.PID, p.SerialNumber)
		}
		found = append(found, desc)
		present[p.Name] = true
	}
	if missing := missingSerialPorts(configured, present); len(missing) > 0 {
		return check("serial", "warn", "configured ports not present: %s; found: %s", strings.Join(missing, ", "), listOrNone(found))
	}
	return check("serial", "ok", "found: %s", listOrNone(found))
}

// missingSerialPorts returns the configured serial devices that are not present, by
// name or, for a stable link such as /dev/serial/by-id/..., by the device it points to.
func missingSerialPorts(configured []string, present map[string]bool) []string {
	var missing []string
	for _, c := range configured {
		if c == "" {
			continue
		}
		ep, err := telemetry.ParseEndpoint(c)
		if err != nil || ep.Network() {
			continue // the config check reports bad ports; network ones are not serial
		}
		if present[c] {
			continue
		}
		if real, err := filepath.EvalSymlinks(c); err == nil && present[real] {
			continue
		}
		missing = append(missing, c)
	}
	return missing
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// checkHub asks the hub for its time over TLS. With an identity the box verifies the
// hub properly; before enrolment it can only tell that something answers there.
func checkHub(ctx context.Context, hubURL string, tlsConf *tls.Config) Check {
	u, err := url.Parse(hubURL)
	if err != nil {
		return check("hub", "fail", "hub URL %q: %v", hubURL, err)
	}
	if tlsConf == nil {
		d := net.Dialer{Timeout: 3 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return check("hub", "warn", "hub %s not reachable: %v", u.Host, err)
		}
		conn.Close()
		return check("hub", "warn", "hub %s answers, but the box is not enrolled", u.Host)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(hubURL, "/")+"/api/v1/hello", nil)
	resp, err := client.Do(req)
	if err != nil {
		return check("hub", "warn", "hub %s not reachable: %v", u.Host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return check("hub", "warn", "hub %s answered %s", u.Host, resp.Status)
	}
	if hubTime, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		if skew := time.Since(hubTime); skew > time.Minute || skew < -time.Minute {
			return check("hub", "warn", "hub %s reachable; clocks differ by %s", u.Host, skew.Round(time.Second))
		}
	}
	return check("hub", "ok", "hub %s reachable with mutual TLS", u.Host)
}
