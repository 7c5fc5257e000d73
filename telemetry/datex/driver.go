package datex

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"lifeline/telemetry"
)

// Mode is the S/5 Computer Interface line setting: 19200 baud, 8 data bits, even
// parity, 1 stop bit.
var Mode = telemetry.SerialMode{Baud: 19200, DataBits: 8, Parity: telemetry.ParityEven, StopBits: 1}

// Config tunes the driver. The zero value asks for displayed values every 5 s, ECG1,
// pleth, an arterial pressure and respiration waves, and alarm changes.
type Config struct {
	Logger *slog.Logger // nil: discard
	// Interval between displayed-value records; the S/5 accepts 5 s and more.
	Interval time.Duration
	// Waves to subscribe to, at most MaxWaves. The S/5 serial link carries about 600
	// samples/s: ECG 300, pleth/INVP 100, respiration/CO2 25 each.
	Waves []byte
	// ECGLeads names the lead shown on the monitor's ECG1, ECG2 and ECG3 traces until
	// the ECG group's label says (and for a chest lead, which it does not number);
	// default II, I, III.
	ECGLeads [3]telemetry.Code
	// NoAlarms skips the alarm subscription.
	NoAlarms bool
	// Resubscribe is how long without any valid record before the requests are sent
	// again (a monitor restarted or a cable re-plugged forgets subscriptions); default 3 s.
	Resubscribe time.Duration
}

// DefaultWaves is the waveform set the driver asks for by default: 450 samples/s.
var DefaultWaves = []byte{WaveECG1, WavePleth, WaveINVP1, WaveResp, WaveCO2}

// Driver reads an S/5 monitor. It implements telemetry.Driver.
type Driver struct {
	cfg Config
	log *slog.Logger
}

// New returns a driver with cfg's defaults filled in.
func New(cfg Config) *Driver {
	if cfg.Interval < 5*time.Second {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Waves == nil {
		cfg.Waves = DefaultWaves
	}
	if len(cfg.Waves) > MaxWaves {
		cfg.Waves = cfg.Waves[:MaxWaves]
	}
	if cfg.ECGLeads == [3]telemetry.Code{} {
		cfg.ECGLeads = [3]telemetry.Code{telemetry.MDC_ECG_ELEC_POTL_II, telemetry.MDC_ECG_ELEC_POTL_I, telemetry.MDC_ECG_ELEC_POTL_III}
	}
	if cfg.Resubscribe <= 0 {
		cfg.Resubscribe = 3 * time.Second
	}
	return &Driver{cfg: cfg, log: telemetry.DiscardLogger(cfg.Logger).With("protocol", "datex")}
}

// Protocol implements telemetry.Driver.
func (*Driver) Protocol() string { return "datex" }

// Serial implements telemetry.Driver.
func (*Driver) Serial() telemetry.SerialMode { return Mode }

// Requests returns the framed records that subscribe to what cfg asks for: displayed
// values, waves and alarm changes.
func (d *Driver) Requests(now time.Time) []byte {
	var out []byte
	add := func(main uint16, typ byte, sub []byte) {
		rec, err := RequestRecord(main, typ, sub, now)
		if err != nil {
			panic(err) // requests are built from bounded config; cannot exceed a record
		}
		out = AppendFrame(out, rec)
	}
	add(MainPhysiological, PhRequest, PhdbRequest{RecordType: PhDisplay, Interval: int16(d.cfg.Interval / time.Second)}.Marshal())
	if len(d.cfg.Waves) > 0 {
		w, err := WaveRequest{Type: WaveStart, Waves: d.cfg.Waves}.Marshal()
		if err != nil {
			panic(err)
		}
		add(MainWave, WaveCmd, w)
	}
	if !d.cfg.NoAlarms {
		add(MainAlarm, AlarmRequest, MarshalAlarmRequest(AlarmEnterDiffMode))
	}
	return out
}

// stopRequests asks the monitor to stop sending, so that it does not stream into a
// port nobody reads.
func stopRequests(now time.Time) []byte {
	var out []byte
	if rec, err := RequestRecord(MainPhysiological, PhRequest, PhdbRequest{RecordType: PhDisplay}.Marshal(), now); err == nil {
		out = AppendFrame(out, rec)
	}
	if w, err := (WaveRequest{Type: WaveStop}).Marshal(); err == nil {
		if rec, err := RequestRecord(MainWave, WaveCmd, w, now); err == nil {
			out = AppendFrame(out, rec)
		}
	}
	if rec, err := RequestRecord(MainAlarm, AlarmRequest, MarshalAlarmRequest(AlarmExitDiffMode), now); err == nil {
		out = AppendFrame(out, rec)
	}
	return out
}

// Run implements telemetry.Driver.
func (d *Driver) Run(ctx context.Context, port telemetry.Port, out telemetry.Sink) error {
	if err := port.SetReadTimeout(100 * time.Millisecond); err != nil {
		return fmt.Errorf("datex: set read timeout: %w", err)
	}
	s := newSession(d, out)
	subscribed := time.Time{}
	lastRecord := time.Now()
	buf := make([]byte, 2048)
	for {
		if err := ctx.Err(); err != nil {
			_, _ = port.Write(stopRequests(time.Now())) // best effort: the port may be gone
			return err
		}
		now := time.Now()
		if subscribed.IsZero() || (now.Sub(lastRecord) >= d.cfg.Resubscribe && now.Sub(subscribed) >= d.cfg.Resubscribe) {
			if !subscribed.IsZero() {
				d.log.Warn("datex: no valid record, subscribing again", "silent_for", now.Sub(lastRecord).Round(time.Millisecond))
			}
			if _, err := port.Write(d.Requests(now)); err != nil {
				return d.portErr(ctx, "write requests", err)
			}
			subscribed = now
		}
		n, err := port.Read(buf)
		if n > 0 {
			if s.feed(buf[:n], time.Now()) {
				lastRecord = time.Now()
			}
		}
		if err != nil {
			return d.portErr(ctx, "read", err)
		}
	}
}

func (d *Driver) portErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("datex: %s: %w", op, err)
}

// session is the per-connection decoding state.
type session struct {
	d         *Driver
	out       telemetry.Sink
	deframer  Deframer
	skipped   uint64
	connected bool
	// lossGen counts frame losses; a wave channel whose last block predates the latest
	// loss gets Gap on its next block, so viewers do not join across the hole.
	lossGen  uint64
	chanGen  map[byte]uint64
	labels   [6]uint16
	ambient  int16 // last ambient pressure (1/10 mmHg) for CO2 conversion
	nibp     [3]int16
	nibpAt   time.Time
	alarms   map[alarmKey]bool
	unmapped map[string]bool
	leadOff  [3]bool // ECG channel 1-3 off, as last reported
	ecgLabel uint16  // the ECG group's label: the lead of ECG channel 1-3, 4 bits each
}

type alarmKey struct {
	text     string
	priority int16
}

func newSession(d *Driver, out telemetry.Sink) *session {
	return &session{d: d, out: out, ambient: NoData, alarms: map[alarmKey]bool{}, unmapped: map[string]bool{}, chanGen: map[byte]uint64{}}
}

// feed decodes bytes from the port; it reports whether a valid record arrived.
func (s *session) feed(p []byte, now time.Time) (gotRecord bool) {
	s.deframer.Feed(p, func(rec []byte) {
		if s.record(rec, now) {
			gotRecord = true
		}
	}, func(e *FrameError) {
		// Junk between two frames looks like a runt frame (start and end flags are the
		// same byte); only a frame of record size that fails is a lost record.
		if e.Reason != "too short" {
			s.lossGen++
		}
		s.out.Skipped(e.Len+2, "bad frame: "+e.Reason)
		s.d.log.Warn("datex: frame dropped", "reason", e.Reason, "len", e.Len)
	})
	if n := s.deframer.Skipped - s.skipped; n > 0 {
		s.skipped = s.deframer.Skipped
		s.out.Skipped(int(n), "noise")
	}
	return gotRecord
}

func (s *session) record(b []byte, now time.Time) bool {
	r, err := ParseRecord(b)
	if err != nil {
		s.lossGen++
		s.out.Skipped(len(b), "bad record")
		s.d.log.Warn("datex: record dropped", "err", err)
		return false
	}
	s.out.Frame()
	if !s.connected {
		s.connected = true
		s.out.Emit(&telemetry.DeviceEvent{State: telemetry.DeviceConnected, Detail: fmt.Sprintf("Datex S/5 answering at DRI level %d", r.DRILevel), ReceiveTime: now})
	}
	for _, sr := range r.Subrecords {
		switch r.MainType {
		case MainPhysiological:
			s.phdb(sr, now)
		case MainWave:
			s.wave(r, sr, now)
		case MainAlarm:
			if sr.Type == AlarmStatus {
				s.alarm(r, sr, now)
			}
		}
	}
	return true
}

func (s *session) phdb(sr Subrecord, now time.Time) {
	if sr.Type != PhDisplay && sr.Type != PhTrend10s && sr.Type != PhTrend60s {
		return
	}
	p, err := ParsePhdb(sr.Data)
	if err != nil {
		s.out.Skipped(len(sr.Data), "bad physiological subrecord")
		s.d.log.Warn("datex: physiological subrecord dropped", "err", err)
		return
	}
	if p.Basic == nil || sr.Type != PhDisplay {
		// Ext classes (12-lead ST, arrhythmia, EEG, …) and trends are not requested by
		// Requests; a monitor that sends them anyway has them skipped here.
		return
	}
	s.numerics(p, now)
}

func (s *session) noteUnmapped(what string) {
	if !s.unmapped[what] {
		s.unmapped[what] = true
		s.d.log.Info("datex: value not mapped to the vitals model", "channel", what)
	}
}

// defaultPressureWave is used for an INVP wave before any displayed-values record told
// the channel's site: the usual S/5 set-up has the arterial line on P1 and CVP on P2.
var defaultPressureWave = [6]telemetry.Code{telemetry.MDC_PRESS_BLD_ART, telemetry.MDC_PRESS_BLD_VEN_CENT, telemetry.MDC_PRESS_BLD_ART_PULM}

// waveCode maps a waveform type to its code, unit and channel.
func (s *session) waveCode(t byte) (telemetry.Code, string, telemetry.Channel, bool) {
	switch t {
	case WaveECG1, WaveECG2, WaveECG3:
		// The ECG group's label says which lead each ECG channel shows; before the first
		// displayed-values record, or for a chest lead it does not number, the
		// configuration says.
		lead := s.d.cfg.ECGLeads[t-WaveECG1]
		if l := ecgLeads[(s.ecgLabel>>(4*(t-WaveECG1)))&0xF]; l.code != 0 {
			lead = l.code
		}
		q, _ := telemetry.Lookup(lead)
		return lead, telemetry.UnitMilliVolt, telemetry.Channel{ID: fmt.Sprintf("ECG%d", t-WaveECG1+1), Label: q.Label}, true
	case WavePleth:
		return telemetry.MDC_PULS_OXIM_PLETH, telemetry.UnitPercent, telemetry.Channel{ID: "SpO2", Label: "SpO2"}, true
	case WaveResp:
		return telemetry.MDC_IMPED_TTHOR, telemetry.UnitOhm, telemetry.Channel{ID: "ECG", Label: "Imped."}, true
	case WaveCO2:
		return telemetry.MDC_AWAY_CO2, telemetry.UnitPercent, telemetry.Channel{ID: "CO2", Label: "CO2"}, true
	case WaveO2:
		return telemetry.MDC_CONC_AWAY_O2, telemetry.UnitPercent, telemetry.Channel{ID: "O2", Label: "O2"}, true
	case WaveN2O:
		return telemetry.MDC_CONC_AWAY_N2O, telemetry.UnitPercent, telemetry.Channel{ID: "N2O", Label: "N2O"}, true
	case WaveAA:
		return telemetry.MDC_CONC_AWAY_AGENT, telemetry.UnitPercent, telemetry.Channel{ID: "AA", Label: "AA"}, true
	case WaveINVP1, WaveINVP2, WaveINVP3, WaveINVP4, WaveINVP5, WaveINVP6:
		ch := int(t - WaveINVP1)
		if t >= WaveINVP5 {
			ch = 4 + int(t-WaveINVP5)
		}
		id := fmt.Sprintf("P%d", ch+1)
		if s.labels[ch] != PressNone {
			site := pressureSite(ch, s.labels[ch])
			return site.wave, telemetry.UnitMMHg, telemetry.Channel{ID: id, Label: site.name}, true
		}
		if c := defaultPressureWave[ch]; c != 0 {
			q, _ := telemetry.Lookup(c)
			return c, telemetry.UnitMMHg, telemetry.Channel{ID: id, Label: q.Label}, true
		}
		return telemetry.MDC_PRESS_BLD, telemetry.UnitMMHg, telemetry.Channel{ID: id, Label: id}, true
	}
	// Airway pressure and flow waves (spirometry) are not modelled; see NotPublished.
	return 0, "", telemetry.Channel{}, false
}

func (s *session) wave(r Record, sr Subrecord, now time.Time) {
	if sr.Type == WaveCmd {
		return
	}
	info, known := LookupWave(sr.Type)
	code, unit, channel, mapped := s.waveCode(sr.Type)
	if !known || !mapped {
		s.noteUnmapped(fmt.Sprintf("wave type %d", sr.Type))
		return
	}
	w, err := ParseWave(sr.Type, sr.Data)
	if err != nil {
		s.out.Skipped(len(sr.Data), "bad wave subrecord")
		s.d.log.Warn("datex: wave subrecord dropped", "err", err)
		s.lossGen++
		return
	}
	ev := &telemetry.Wave{Code: code, Unit: unit, Rate: info.Rate, Channel: channel, ReceiveTime: now, Samples: make([]float32, len(w.Samples))}
	if gen, seen := s.chanGen[sr.Type]; seen && gen != s.lossGen {
		ev.Gap = true
	}
	s.chanGen[sr.Type] = s.lossGen
	if !r.Time.IsZero() && r.Time.Unix() != 0 {
		// r_time has whole seconds only; it dates the record, not the first sample.
		ev.MonitorStart = r.Time
	}
	for i, v := range w.Samples {
		if !Valid(v) {
			ev.Samples[i] = float32(math.NaN())
			ev.Invalid = true
			continue
		}
		ev.Samples[i] = float32(float64(v) * info.Scale)
	}
	s.out.Emit(ev)
}

func (s *session) alarm(r Record, sr Subrecord, now time.Time) {
	m, err := ParseAlarm(sr.Data)
	if err != nil {
		s.out.Skipped(len(sr.Data), "bad alarm subrecord")
		s.d.log.Warn("datex: alarm subrecord dropped", "err", err)
		return
	}
	current := map[alarmKey]bool{}
	for _, a := range m.Alarms {
		if a.Priority == AlarmNone || a.Text == "" {
			continue
		}
		k := alarmKey{a.Text, a.Priority}
		current[k] = true
		if !s.alarms[k] {
			s.alarmEvent(k, true, r.Time, now)
		}
	}
	for k := range s.alarms {
		if !current[k] {
			s.alarmEvent(k, false, r.Time, now)
		}
	}
	s.alarms = current
}

// alarmEvent emits an alarm raised or cleared, with the quantity and channel its text
// names, and the sensor-off or sensor-on event it means.
func (s *session) alarmEvent(k alarmKey, on bool, monitorTime, now time.Time) {
	code, ch := channelOfText(k.text)
	s.out.Emit(&telemetry.Alarm{Priority: alarmPriority(k.priority), Text: k.text, Code: code, Channel: ch, On: on, MonitorTime: monitorTime, ReceiveTime: now})
	if ev := sensorEvent(k.text, on, now); ev != nil {
		s.out.Emit(ev)
	}
}

func alarmPriority(p int16) telemetry.Priority {
	switch p {
	case AlarmNotice:
		return telemetry.PriorityLow
	case AlarmMedium:
		return telemetry.PriorityMedium
	case AlarmHigh:
		return telemetry.PriorityHigh
	}
	return telemetry.PriorityNone
}

// ProbeRequest implements telemetry.Detector: a displayed-values subscription and a
// one-shot alarm status request, both of which an S/5 answers at once.
func (d *Driver) ProbeRequest() []byte {
	now := time.Now()
	var out []byte
	if rec, err := RequestRecord(MainPhysiological, PhRequest, PhdbRequest{RecordType: PhDisplay, Interval: 5}.Marshal(), now); err == nil {
		out = AppendFrame(out, rec)
	}
	if rec, err := RequestRecord(MainAlarm, AlarmRequest, MarshalAlarmRequest(AlarmXmitStatus), now); err == nil {
		out = AppendFrame(out, rec)
	}
	return out
}

// ProbeWindow implements telemetry.Detector.
func (*Driver) ProbeWindow() time.Duration { return 3 * time.Second }

// Probe implements telemetry.Detector: true when data holds a frame with a valid
// checksum whose record parses with a known main type.
func (*Driver) Probe(data []byte) bool {
	var d Deframer
	found := false
	d.Feed(data, func(rec []byte) {
		r, err := ParseRecord(rec)
		if err != nil || (r.MainType != MainPhysiological && r.MainType != MainWave && r.MainType != MainAlarm) {
			return
		}
		// Requests (subrecord type 0) are what the box itself sends: an echoing line
		// must not pass for a monitor.
		for _, sr := range r.Subrecords {
			if sr.Type != 0 {
				found = true
			}
		}
	}, func(*FrameError) {})
	return found
}

var _ telemetry.Driver = (*Driver)(nil)
