package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"lifeline/dispatch/jt808"
	"lifeline/hardware/gnss"
	"lifeline/internal/durable"
)

// Config configures a Reporter. Zero values mean the defaults in parentheses.
type Config struct {
	// Server is the platform's host:port; dispatch can change it with 0x8103.
	Server  string
	Edition jt808.Edition // 2013 or 2019
	// Phone is the terminal's phone number / ID (the edge config's terminal_id).
	Phone    string
	Register jt808.Register
	IMEI     string
	Software string

	Interval        time.Duration // between reports when available (5 s)
	MissionInterval time.Duration // between reports on a mission (1 s)
	TurnDeg         float64       // a turn this sharp is reported at once (30°)
	MaxBacklog      int           // reports kept while the platform is unreachable (DefaultMaxBacklog)
	ResponseTimeout time.Duration // for each platform answer (10 s)
	Heartbeat       time.Duration // (30 s)

	// Store keeps the blind-zone backlog, the authentication code, the parameters
	// dispatch set and the mission. Required.
	Store *durable.Store
	// Mission, if set, makes reports come every MissionInterval while it is active.
	Mission *Mission
	// Signal, if set, gives the modem's signal for the 0x30 item (0–31, as AT+CSQ).
	Signal func() (byte, bool)
	// OnText receives dispatch's text messages for the crew (0x8300).
	OnText func(jt808.TextMessage)
	// Dial connects to the platform; default a TCP dial bounded by ResponseTimeout.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	Log  *slog.Logger
}

func (c *Config) populate() error {
	if c.Store == nil {
		return errors.New("dispatch: a durable store is required for the blind-zone backlog")
	}
	if c.Edition == 0 {
		c.Edition = jt808.Edition2019
	}
	if c.Edition != jt808.Edition2013 && c.Edition != jt808.Edition2019 {
		return fmt.Errorf("dispatch: edition %d: want 2013 or 2019", int(c.Edition))
	}
	digits := 12
	if c.Edition == jt808.Edition2019 {
		digits = 20
	}
	if c.Phone == "" || len(c.Phone) > digits || strings.Trim(c.Phone, "0123456789") != "" {
		return fmt.Errorf("dispatch: terminal_id %q: want 1 to %d digits for %v", c.Phone, digits, c.Edition)
	}
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		return fmt.Errorf("dispatch: server %q: want host:port: %w", c.Server, err)
	}
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.MissionInterval <= 0 {
		c.MissionInterval = time.Second
	}
	if c.TurnDeg <= 0 {
		c.TurnDeg = 30
	}
	if c.ResponseTimeout <= 0 {
		c.ResponseTimeout = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Dial == nil {
		timeout := c.ResponseTimeout
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout}
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	return nil
}

// Reporter reports the ambulance's position to the 120 dispatch platform over JT/T
// 808. Offer gives it every GNSS fix; it decides which are reports (every Interval,
// every MissionInterval on a mission, at once on a turn sharper than TurnDeg), stores
// each in the durable backlog, and Run sends them: the newest live as 0x0200, any
// backlog from a blind zone oldest first in 0x0704 batches.
type Reporter struct {
	cfg     Config
	backlog *Backlog
	wake    chan struct{}

	mu        sync.Mutex
	mark      reportMark
	hasMark   bool
	liveSeq   uint64 // the newest report offered in this process, to go live
	latest    jt808.Location
	hasLatest bool
	tracking  tracking // 0x8202 temporary tracking
	params    platformParams
	stats     Stats
}

type tracking struct {
	interval time.Duration
	until    time.Time
}

// Stats counts the reporter's work for the status page and the benchmark.
type Stats struct {
	Offered       int64 `json:"offered"`        // reports made from fixes
	SentLive      int64 `json:"sent_live"`      // as 0x0200
	SentBacklog   int64 `json:"sent_backlog"`   // in 0x0704 batches
	Batches       int64 `json:"batches"`        // 0x0704 messages
	Connects      int64 `json:"connects"`       // sessions opened
	ConnectFailed int64 `json:"connect_failed"` // dials or logins that failed
	SendFailed    int64 `json:"send_failed"`    // reports not acknowledged in time
	Commands      int64 `json:"commands"`       // platform commands handled
}

// NewReporter opens the backlog and the parameters dispatch set earlier.
func NewReporter(cfg Config) (*Reporter, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	b, err := openBacklog(cfg.Store, cfg.MaxBacklog)
	if err != nil {
		return nil, err
	}
	r := &Reporter{cfg: cfg, backlog: b, wake: make(chan struct{}, 1)}
	r.mark, r.hasMark = b.lastMark()
	r.params = loadParams(cfg.Store, cfg)
	return r, nil
}

// Backlog is the durable store of unsent reports.
func (r *Reporter) Backlog() *Backlog { return r.backlog }

// Stats returns the counters.
func (r *Reporter) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// interval is the report interval in force.
func (r *Reporter) intervalLocked(at time.Time) time.Duration {
	if r.tracking.interval > 0 && at.Before(r.tracking.until) {
		return r.tracking.interval
	}
	if r.cfg.Mission != nil && r.cfg.Mission.Active() {
		return r.cfg.MissionInterval
	}
	return r.params.interval
}

// Offer takes a fix. A fix due for a report is stored durably before Offer returns
// (so the report survives a power cut) and handed to Run. Invalid fixes are reported
// on the interval with the last position and the "positioned" status bit clear, so
// dispatch sees the box is alive in a tunnel. It returns whether a report was made.
func (r *Reporter) Offer(f gnss.Fix) (bool, error) {
	if r.cfg.Mission != nil {
		r.cfg.Mission.Observe(f)
	}
	if f.Time.IsZero() {
		return false, nil // no GNSS time yet: a report needs one
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hasMark && !f.Time.After(r.mark.Time) {
		return false, nil // already reported (a restart replays nothing)
	}
	if !r.dueLocked(f) {
		return false, nil
	}
	loc := r.locationLocked(f)
	mark := reportMark{Time: f.Time, Course: f.CourseDeg, Lat: loc.Lat, Lon: loc.Lon}
	seq, err := r.backlog.push(loc.Marshal(), mark)
	if err != nil {
		return false, err
	}
	r.mark, r.hasMark = mark, true
	r.liveSeq = seq
	r.latest, r.hasLatest = loc, true
	r.stats.Offered++
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return true, nil
}

func (r *Reporter) dueLocked(f gnss.Fix) bool {
	if !r.hasMark {
		return true
	}
	if f.Time.Sub(r.mark.Time) >= r.intervalLocked(f.Time) {
		return true
	}
	// A turn: the course means something only when moving.
	if f.Valid && f.HasCourse && f.SpeedKmh >= 5 {
		d := math.Abs(math.Mod(f.CourseDeg-r.mark.Course+540, 360) - 180)
		return d > r.cfg.TurnDeg
	}
	return false
}

func (r *Reporter) locationLocked(f gnss.Fix) jt808.Location {
	loc := jt808.Location{Time: f.Time, Status: jt808.StatusACC}
	if f.Valid {
		loc.Status |= jt808.StatusFixed
		loc.Lat, loc.Lon = f.Lat, f.Lon
		loc.SpeedKmh = f.SpeedKmh
		loc.Course = uint16(math.Mod(math.Round(f.CourseDeg), 360))
		if f.HasAlt {
			loc.Altitude = int16(math.Max(math.Min(math.Round(f.AltitudeM), math.MaxInt16), math.MinInt16))
		}
	} else if r.hasMark {
		loc.Lat, loc.Lon = r.mark.Lat, r.mark.Lon
	}
	for sys, bit := range map[gnss.System]uint32{gnss.GPS: jt808.StatusGPS, gnss.BeiDou: jt808.StatusBeiDou, gnss.GLONASS: jt808.StatusGLONASS, gnss.Galileo: jt808.StatusGalileo} {
		if f.Uses(sys) {
			loc.Status |= bit
		}
	}
	loc.Satellites, loc.HasSatellites = byte(min(f.Satellites, 255)), true
	if r.cfg.Signal != nil {
		loc.Signal, loc.HasSignal = r.cfg.Signal()
	}
	return loc
}

// latestLocation is the last report, for a location query (0x8201).
func (r *Reporter) latestLocation() (jt808.Location, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latest, r.hasLatest
}

func (r *Reporter) count(f func(*Stats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

// LastReport is the GNSS time of the last report made (stored, so it survives a
// restart).
func (r *Reporter) LastReport() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mark.Time, r.hasMark
}

// Status is the reporter's entry in the box's /api/v1/status details.
type Status struct {
	Server     string `json:"server"`
	Edition    int    `json:"edition"`
	Backlog    int    `json:"backlog"`
	Dropped    int64  `json:"dropped"`
	IntervalS  int    `json:"interval_s"`
	LastReport string `json:"last_report,omitempty"`
	Stats
}

// Status reports for the status page.
func (r *Reporter) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{Server: r.params.server, Edition: int(r.cfg.Edition), Backlog: r.backlog.Len(), Dropped: r.backlog.Dropped(), Stats: r.stats}
	// The schedule runs on GNSS time: the interval in force is the one at the last
	// report.
	s.IntervalS = int(r.intervalLocked(r.mark.Time) / time.Second)
	if r.hasMark {
		s.LastReport = r.mark.Time.UTC().Format(time.RFC3339)
	}
	return s
}

func (r *Reporter) String() string { return fmt.Sprintf("JT/T 808 reporter to %s", r.params.server) }
