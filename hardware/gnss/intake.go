package gnss

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	nmea "github.com/adrianmo/go-nmea"
)

// State is what the box knows about its position right now.
type State string

// Position states.
const (
	// Searching: sentences arrive but there has been no fix since the start.
	Searching State = "searching"
	// Fixed: a valid fix no older than StaleAfter.
	Fixed State = "fixed"
	// Lost: there was a fix, but none for StaleAfter while the receiver still talks
	// (a tunnel, an urban canyon, an antenna cable off).
	Lost State = "lost"
	// Silent: no sentence for StaleAfter (receiver unplugged, wrong baud rate).
	Silent State = "silent"
)

// StaleAfter is how old the last fix (or sentence) may be before the position is
// reported lost (or the receiver silent). Receivers send at 1 Hz or faster, so 3 s
// is three missed epochs.
const StaleAfter = 3 * time.Second

// MaxSentence bounds one line. NMEA 0183 allows 82 characters; some receivers'
// proprietary sentences run longer, so a little slack, and no more.
const MaxSentence = 256

// IntakeStats counts the sentences read.
type IntakeStats struct {
	Sentences   int64 // parsed and used
	Bad         int64 // checksum, syntax or field errors
	Unsupported int64 // well-formed types the box does not use (GLL, TXT, proprietary)
	TooLong     int64 // lines longer than MaxSentence
	Epochs      int64 // fixes published
}

// Intake assembles NMEA sentences into one Fix per epoch. Feed it lines with Line and
// call Flush when the receiver pauses between bursts (a read timeout on the port);
// an epoch also ends when a sentence of a newer epoch arrives. It is safe for
// concurrent use.
type Intake struct {
	log   *slog.Logger
	onFix func(Fix)

	mu       sync.Mutex
	cur      Fix
	open     bool // cur has data
	curTOD   nmea.Time
	rmcSeen  bool
	validSet bool
	// positional: the epoch has a position sentence (RMC, GGA, GNS); one without
	// (GSV, GSA alone) says nothing about the fix and is not published.
	positional bool
	usedPRN    map[System]map[string]bool
	inView     map[string]int64 // talker (and 4.11 system) → satellites in view
	date       nmea.Date

	latest       Fix
	lastSentence time.Time
	lastValid    time.Time
	everFixed    bool
	gnssTime     time.Time // UTC of the last epoch with date and time
	gnssAt       time.Time // box clock when it arrived
	stats        IntakeStats
	lastBadLog   time.Time
}

// NewIntake returns an Intake that calls onFix (if not nil) with every completed
// epoch, outside its lock.
func NewIntake(log *slog.Logger, onFix func(Fix)) *Intake {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Intake{log: log, onFix: onFix}
}

// Line takes one sentence received at now (the box's clock). Bad sentences are
// counted and logged (at most every 10 s), never fatal.
func (in *Intake) Line(line string, now time.Time) {
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return
	}
	in.mu.Lock()
	var done *Fix
	defer func() {
		in.mu.Unlock()
		if done != nil && in.onFix != nil {
			in.onFix(*done)
		}
	}()
	in.lastSentence = now
	if len(line) > MaxSentence {
		in.stats.TooLong++
		in.bad(now, "sentence too long", nil, line[:40])
		return
	}
	s, err := nmea.Parse(line)
	if err != nil {
		var ns *nmea.NotSupportedError
		if errors.As(err, &ns) {
			in.stats.Unsupported++
			return
		}
		in.stats.Bad++
		in.bad(now, "bad NMEA sentence", err, line)
		return
	}
	in.stats.Sentences++
	done = in.apply(s, now)
}

func (in *Intake) bad(now time.Time, what string, err error, line string) {
	if now.Sub(in.lastBadLog) < 10*time.Second {
		return
	}
	in.lastBadLog = now
	in.log.Warn("gnss: "+what, "err", err, "sentence", line, "bad_so_far", in.stats.Bad+in.stats.TooLong)
}

// Flush ends the epoch being assembled (the receiver paused) and publishes it.
func (in *Intake) Flush(now time.Time) {
	in.mu.Lock()
	f, ok := in.finish(now)
	in.mu.Unlock()
	if ok && in.onFix != nil {
		in.onFix(f)
	}
}

// begin makes sure an epoch is open; a timed sentence of another epoch closes the
// open one first and returns it.
func (in *Intake) begin(tod nmea.Time, now time.Time) *Fix {
	var done *Fix
	if in.open && tod.Valid && in.curTOD.Valid && tod != in.curTOD {
		if f, ok := in.finish(now); ok {
			done = &f
		}
	}
	if !in.open {
		in.open = true
		in.cur = Fix{Datum: WGS84, Received: now}
		in.curTOD = nmea.Time{}
		in.rmcSeen, in.validSet, in.positional = false, false, false
		in.usedPRN = map[System]map[string]bool{}
		in.inView = map[string]int64{}
	}
	if tod.Valid && !in.curTOD.Valid {
		in.curTOD = tod
	}
	return done
}

func (in *Intake) finish(now time.Time) (Fix, bool) {
	if !in.open {
		return Fix{}, false
	}
	in.open = false
	if !in.positional {
		return Fix{}, false
	}
	f := in.cur
	for sys, prns := range in.usedPRN {
		if len(prns) > 0 && sys != "" {
			f.Systems = append(f.Systems, sys)
		}
	}
	if n := countPRN(in.usedPRN); n > f.Satellites {
		f.Satellites = n
	}
	for _, v := range in.inView {
		f.InView += int(v)
	}
	if in.curTOD.Valid {
		f.Time = in.epochTime()
	}
	in.latest = f
	in.stats.Epochs++
	if f.Valid {
		in.lastValid = f.Received
		in.everFixed = true
	}
	if in.date.Valid && in.curTOD.Valid {
		in.gnssTime, in.gnssAt = f.Time, f.Received
	}
	return f, true
}

func countPRN(m map[System]map[string]bool) int {
	n := 0
	for _, p := range m {
		n += len(p)
	}
	return n
}

func (in *Intake) epochTime() time.Time {
	t := in.curTOD
	d := in.date
	if !d.Valid {
		return time.Date(1, 1, 1, t.Hour, t.Minute, t.Second, t.Millisecond*1e6, time.UTC)
	}
	return time.Date(2000+d.YY, time.Month(d.MM), d.DD, t.Hour, t.Minute, t.Second, t.Millisecond*1e6, time.UTC)
}

// Latest returns the last completed epoch.
func (in *Intake) Latest() Fix {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.latest
}

// State says whether the position is usable at now, with the last fix.
func (in *Intake) State(now time.Time) (State, Fix) {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case in.lastSentence.IsZero() || now.Sub(in.lastSentence) > StaleAfter:
		return Silent, in.latest
	case in.latest.Valid && now.Sub(in.lastValid) <= StaleAfter:
		// A receiver that says "no fix" is believed at once (below); one that just
		// stops giving positions is believed after StaleAfter.
		return Fixed, in.latest
	case in.everFixed:
		return Lost, in.latest
	}
	return Searching, in.latest
}

// Time returns the current UTC time as the receiver told it, advanced by the box's
// monotonic clock since, for a box without NTP. ok is false when the receiver has
// not given date and time in the last minute.
func (in *Intake) Time(now time.Time) (utc time.Time, ok bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gnssTime.IsZero() || now.Sub(in.gnssAt) > time.Minute {
		return time.Time{}, false
	}
	return in.gnssTime.Add(now.Sub(in.gnssAt)), true
}

// Stats returns the counters.
func (in *Intake) Stats() IntakeStats {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stats
}
