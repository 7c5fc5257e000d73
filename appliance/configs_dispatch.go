package appliance

import (
	"fmt"
	"strings"
	"time"

	"lifeline/dispatch"
	"lifeline/dispatch/jt808"
	"lifeline/hardware/serialport"
)

// GNSSSection is the box's GNSS receiver ([gnss] in edge.toml). No port: no receiver.
type GNSSSection struct {
	Port string `toml:"port"` // /dev/ttyACM0, /dev/serial/by-id/…
	// USB is the adapter's identity, "VID:PID" or "VID:PID:SERIAL" (hex IDs as lsusb
	// prints them): the receiver is found by it again after an unplug, under whatever
	// name it comes back. Empty: learnt from port at the first open.
	USB  string `toml:"usb"`
	Baud int    `toml:"baud"` // 0: 9600, what most u-blox and Quectel L76 modules send at
}

// ModemSection is the box's 5G module's AT port ([modem] in edge.toml). No port: no
// link quality on the status page, to the hub or to dispatch.
type ModemSection struct {
	Port string   `toml:"port"` // /dev/ttyUSB2 on Quectel RM5xx over USB
	USB  string   `toml:"usb"`  // as [gnss] usb
	Baud int      `toml:"baud"` // 0: 115200 (USB ports ignore it)
	Poll Duration `toml:"poll"` // 0: every 5 s
}

// DispatchSection is the JT/T 808 link to the 120 dispatch centre ([dispatch] in
// edge.toml). No server: no reports to dispatch, but the mission and its ETA still
// run for the crew and the hub.
type DispatchSection struct {
	Server     string `toml:"server"`      // the platform's host:port
	TerminalID string `toml:"terminal_id"` // the terminal's phone number: up to 20 digits (2019), 12 (2013)
	// Edition is "2019" (default) or "2013"; a bare number is taken too.
	Edition DispatchEdition `toml:"edition"`
	// Interval between reports while the ambulance is available (0: 5 s); on a
	// mission it reports every second, and dispatch may change either with 0x8103.
	Interval Duration `toml:"interval"`
	// Destination is the receiving hospital, for the ETA; dispatch may send another.
	Destination DestinationSection `toml:"destination"`
}

// DestinationSection is [dispatch.destination]: a name and a WGS-84 point. An empty
// name means none.
type DestinationSection struct {
	Name string  `toml:"name"`
	Lat  float64 `toml:"lat"`
	Lon  float64 `toml:"lon"`
}

// DispatchEdition is a JT/T 808 edition as written in edge.toml: "2019" or "2013"
// (or the bare number). The zero value is the default, 2019.
type DispatchEdition string

// UnmarshalTOML takes the edition as a string or an integer.
func (e *DispatchEdition) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*e = DispatchEdition(v)
	case int64:
		*e = DispatchEdition(fmt.Sprint(v))
	default:
		return fmt.Errorf("%v is not an edition such as \"2019\" or \"2013\"", v)
	}
	return nil
}

// JT808 is the edition for the dispatch library (2019 when not set).
func (e DispatchEdition) JT808() jt808.Edition {
	if e == "2013" {
		return jt808.Edition2013
	}
	return jt808.Edition2019
}

// DefaultReportInterval is dispatch.interval's default.
const DefaultReportInterval = 5 * time.Second

// ReportInterval is dispatch.interval, or its default.
func (d DispatchSection) ReportInterval() time.Duration {
	if d.Interval.Duration > 0 {
		return d.Interval.Duration
	}
	return DefaultReportInterval
}

// destination is the configured destination for the mission, or nil.
func (d DispatchSection) destination() *dispatch.Destination {
	if d.Destination.Name == "" {
		return nil
	}
	return &dispatch.Destination{Name: d.Destination.Name, Lat: d.Destination.Lat, Lon: d.Destination.Lon}
}

// ParseUSBID reads "VID:PID" or "VID:PID:SERIAL" (four hex digits each for VID and PID).
func ParseUSBID(s string) (serialport.USBID, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 2 || !hex4(parts[0]) || !hex4(parts[1]) || (len(parts) == 3 && parts[2] == "") {
		return serialport.USBID{}, fmt.Errorf("%q is not a USB identity such as \"1546:01a8\" or \"1546:01a8:SERIAL\" (VID:PID[:serial], hex as lsusb prints them)", s)
	}
	id := serialport.USBID{VID: strings.ToLower(parts[0]), PID: strings.ToLower(parts[1])}
	if len(parts) == 3 {
		id.Serial = parts[2]
	}
	return id, nil
}

func hex4(s string) bool {
	return len(s) == 4 && strings.Trim(strings.ToLower(s), "0123456789abcdef") == ""
}

// usbID is a port's USB identity from the config, already validated.
func usbID(s string) serialport.USBID {
	id, _ := ParseUSBID(s)
	return id
}

// position checks [gnss], [modem] and [dispatch].
func (c *checker) position(g GNSSSection, m ModemSection, d DispatchSection) {
	c.serialRole("gnss", g.Port, g.USB, g.Baud)
	c.serialRole("modem", m.Port, m.USB, m.Baud)
	if m.Poll.Duration < 0 {
		c.fail("modem.poll", "must not be negative, got %s", m.Poll.Duration)
	}
	if d.Server != "" {
		c.hostPort("dispatch.server", d.Server)
		if d.TerminalID == "" {
			c.fail("dispatch.terminal_id", "dispatch.server is set: the platform knows the box by its terminal phone number (digits)")
		}
	}
	if d.Edition != "" {
		c.oneOf("dispatch.edition", string(d.Edition), "2019", "2013")
	}
	max := 20
	if d.Edition.JT808() == jt808.Edition2013 {
		max = 12
	}
	if id := d.TerminalID; id != "" && (len(id) > max || strings.Trim(id, "0123456789") != "") {
		c.fail("dispatch.terminal_id", "%q: a JT/T 808-%s terminal phone number is up to %d digits", id, d.Edition.JT808String(), max)
	}
	if d.Interval.Duration < 0 || (d.Interval.Duration > 0 && d.Interval.Duration < time.Second) {
		c.fail("dispatch.interval", "must be at least 1s (JT/T 808 counts whole seconds), got %s", d.Interval.Duration)
	}
	dst := d.Destination
	switch {
	case dst.Name == "" && (dst.Lat != 0 || dst.Lon != 0):
		c.fail("dispatch.destination.name", "the destination at %g, %g needs a name the crew and the hospital read", dst.Lat, dst.Lon)
	case dst.Lat < -90 || dst.Lat > 90:
		c.fail("dispatch.destination.lat", "%g is not a latitude (-90 to 90, WGS-84)", dst.Lat)
	case dst.Lon < -180 || dst.Lon > 180:
		c.fail("dispatch.destination.lon", "%g is not a longitude (-180 to 180, WGS-84)", dst.Lon)
	case dst.Name != "" && dst.Lat == 0 && dst.Lon == 0:
		c.fail("dispatch.destination.lat", "destination %q needs its WGS-84 lat and lon", dst.Name)
	}
}

// JT808String is the edition's year, for messages.
func (e DispatchEdition) JT808String() string { return fmt.Sprint(int(e.JT808())) }

// serialRole checks the port, USB identity and baud rate of a serial device's role.
func (c *checker) serialRole(section, port, usb string, baud int) {
	if usb != "" {
		if _, err := ParseUSBID(usb); err != nil {
			c.fail(section+".usb", "%v", err)
		}
		if port == "" {
			c.fail(section+".port", "%s.usb is set but %s.port is empty: name the port it has now (it is found again by usb after an unplug)", section, section)
		}
	}
	if baud < 0 || baud > 4000000 {
		c.fail(section+".baud", "%d is not a serial baud rate", baud)
	}
	if port != "" && strings.Contains(port, "://") {
		c.fail(section+".port", "%q: the %s is a serial device path such as /dev/ttyUSB2", port, section)
	}
}
