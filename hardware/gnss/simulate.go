package gnss

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	nmea "github.com/adrianmo/go-nmea"
)

// Waypoint is a point of a simulated route (WGS-84).
type Waypoint struct{ Lat, Lon float64 }

// Tunnel is a stretch of a simulated drive without a fix: from After since the start,
// for For. The receiver keeps talking and says "no fix", as a real one does.
type Tunnel struct{ After, For time.Duration }

// SimConfig configures the receiver simulator: either Replay a log, or drive Route at
// SpeedKmh.
type SimConfig struct {
	// Replay is an NMEA log (lines; '#' comments skipped), written one epoch per
	// Interval; an epoch ends where the time of RMC, GGA or GNS changes.
	Replay io.Reader
	// Route is driven at SpeedKmh from its first point, and again from the start
	// when Loop is set.
	Route    []Waypoint
	SpeedKmh float64
	Loop     bool
	Tunnels  []Tunnel
	// Start is the GNSS time of the first epoch of a drive; default the box's clock.
	Start time.Time
	// Interval between epochs; default 1 s.
	Interval time.Duration
}

// Simulate writes a receiver's output to w until ctx ends or the input (a log, a
// route without Loop) is exhausted.
func Simulate(ctx context.Context, w io.Writer, cfg SimConfig) error {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Replay != nil {
		return replayLog(ctx, w, cfg)
	}
	if len(cfg.Route) < 2 || cfg.SpeedKmh < 0 {
		return fmt.Errorf("gnss simulator: a route needs at least two points and a speed (got %d points, %v km/h)", len(cfg.Route), cfg.SpeedKmh)
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Now().UTC()
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	total := RouteLength(cfg.Route)
	for i := 0; ; i++ {
		elapsed := time.Duration(i) * cfg.Interval
		dist := cfg.SpeedKmh / 3.6 * elapsed.Seconds()
		if dist > total && !cfg.Loop {
			return nil
		}
		if total > 0 {
			dist = math.Mod(dist, total)
		}
		lat, lon, course := RoutePosition(cfg.Route, dist)
		ep := SimEpoch{Time: cfg.Start.Add(elapsed), Lat: lat, Lon: lon, SpeedKmh: cfg.SpeedKmh, Course: course, Fix: !inTunnel(cfg.Tunnels, elapsed)}
		if _, err := io.WriteString(w, ep.Sentences()); err != nil {
			return fmt.Errorf("gnss simulator: write: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func inTunnel(ts []Tunnel, at time.Duration) bool {
	for _, t := range ts {
		if at >= t.After && at < t.After+t.For {
			return true
		}
	}
	return false
}

func replayLog(ctx context.Context, w io.Writer, cfg SimConfig) error {
	sc := bufio.NewScanner(cfg.Replay)
	sc.Buffer(make([]byte, 4096), 64*1024)
	var epoch strings.Builder
	var epochTime string
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	flush := func() error {
		if epoch.Len() == 0 {
			return nil
		}
		if _, err := io.WriteString(w, epoch.String()); err != nil {
			return fmt.Errorf("gnss simulator: write: %w", err)
		}
		epoch.Reset()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		return nil
	}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if tm := positionTime(line); tm != "" && epochTime != "" && tm != epochTime {
			if err := flush(); err != nil {
				return nil
			}
		}
		if tm := positionTime(line); tm != "" {
			epochTime = tm
		}
		epoch.WriteString(line + "\r\n")
	}
	if err := flush(); err != nil {
		return nil
	}
	return sc.Err()
}

// positionTime is the time field of an RMC, GGA or GNS line, else "".
func positionTime(line string) string {
	if len(line) < 7 || line[0] != '$' {
		return ""
	}
	switch line[3:6] {
	case "RMC", "GGA", "GNS":
		f := strings.SplitN(line, ",", 3)
		if len(f) >= 2 {
			return f[1]
		}
	}
	return ""
}

// RouteLength is the length of a route in metres.
func RouteLength(r []Waypoint) float64 {
	d := 0.0
	for i := 1; i < len(r); i++ {
		d += DistanceM(r[i-1].Lat, r[i-1].Lon, r[i].Lat, r[i].Lon)
	}
	return d
}

// RoutePosition is the point dist metres along the route and the course there (past
// the end: the last point).
func RoutePosition(r []Waypoint, dist float64) (lat, lon, course float64) {
	for i := 1; i < len(r); i++ {
		a, b := r[i-1], r[i]
		seg := DistanceM(a.Lat, a.Lon, b.Lat, b.Lon)
		course = Bearing(a.Lat, a.Lon, b.Lat, b.Lon)
		if dist <= seg || i == len(r)-1 {
			f := 1.0
			if seg > 0 {
				f = math.Min(dist/seg, 1)
			}
			// Linear interpolation is exact enough over the hundreds of metres between
			// a city route's points.
			return a.Lat + (b.Lat-a.Lat)*f, a.Lon + (b.Lon-a.Lon)*f, course
		}
		dist -= seg
	}
	return r[0].Lat, r[0].Lon, 0
}

// Bearing is the initial great-circle course from the first point to the second, in
// degrees from true north.
func Bearing(lat1, lon1, lat2, lon2 float64) float64 {
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dl := (lon2 - lon1) * math.Pi / 180
	y := math.Sin(dl) * math.Cos(p2)
	x := math.Cos(p1)*math.Sin(p2) - math.Sin(p1)*math.Cos(p2)*math.Cos(dl)
	return math.Mod(math.Atan2(y, x)*180/math.Pi+360, 360)
}

// SimEpoch is one epoch of simulated receiver output.
type SimEpoch struct {
	Time     time.Time
	Lat, Lon float64
	SpeedKmh float64
	Course   float64
	Fix      bool
}

// Sentences renders the epoch as a multi-constellation NMEA 4.11 receiver does: RMC,
// VTG, GGA, GSA per system (GPS and BeiDou, with system IDs), GSV per talker, ZDA.
func (e SimEpoch) Sentences() string {
	t := e.Time.UTC()
	hms := fmt.Sprintf("%02d%02d%02d.00", t.Hour(), t.Minute(), t.Second())
	var b strings.Builder
	put := func(body string) { fmt.Fprintf(&b, "$%s*%s\r\n", body, nmea.Checksum(body)) }
	if !e.Fix {
		put(fmt.Sprintf("GNRMC,%s,V,,,,,,,%s,,,N,V", hms, t.Format("020106")))
		put("GNGGA," + hms + ",,,,,0,00,99.99,,,,,,")
		put("GNGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99,1")
		put("GPGSV,1,1,02,05,12,200,,13,08,045,,1")
		put(fmt.Sprintf("GNZDA,%s,%02d,%02d,%04d,00,00", hms, t.Day(), int(t.Month()), t.Year()))
		return b.String()
	}
	lat, ns := nmeaAngle(e.Lat, 2), "N"
	if e.Lat < 0 {
		ns = "S"
	}
	lon, ew := nmeaAngle(e.Lon, 3), "E"
	if e.Lon < 0 {
		ew = "W"
	}
	kn := e.SpeedKmh / knotsToKmh
	put(fmt.Sprintf("GNRMC,%s,A,%s,%s,%s,%s,%.2f,%.2f,%s,,,A,V", hms, lat, ns, lon, ew, kn, e.Course, t.Format("020106")))
	put(fmt.Sprintf("GNVTG,%.2f,T,,M,%.2f,N,%.2f,K,A", e.Course, kn, e.SpeedKmh))
	put(fmt.Sprintf("GNGGA,%s,%s,%s,%s,%s,1,12,0.8,12.0,M,-5.0,M,,", hms, lat, ns, lon, ew))
	put("GNGSA,A,3,02,05,13,15,18,24,29,,,,,,1.4,0.8,1.1,1")
	put("GNGSA,A,3,07,10,21,27,33,,,,,,,,1.4,0.8,1.1,4")
	put("GPGSV,2,1,08,02,45,120,42,05,30,200,38,13,60,045,44,15,25,300,36,1")
	put("GPGSV,2,2,08,18,50,080,41,24,15,250,33,29,70,160,45,30,05,010,,1")
	put("BDGSV,2,1,06,07,40,100,40,10,55,210,43,21,35,330,37,27,65,020,45,1")
	put("BDGSV,2,2,06,33,20,150,35,38,08,270,,1")
	put(fmt.Sprintf("GNZDA,%s,%02d,%02d,%04d,00,00", hms, t.Day(), int(t.Month()), t.Year()))
	return b.String()
}

// nmeaAngle formats degrees as NMEA's (d)ddmm.mmmmm.
func nmeaAngle(deg float64, width int) string {
	deg = math.Abs(deg)
	d := math.Floor(deg)
	m := (deg - d) * 60
	if m >= 59.999995 { // rounding would print 60.00000
		d, m = d+1, 0
	}
	return fmt.Sprintf("%0*d%08.5f", width, int(d), m)
}
