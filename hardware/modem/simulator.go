package modem

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Cell is the simulated module's serving cell at one moment.
type Cell struct {
	Technology Technology
	Operator   string // long name, as AT+COPS? answers in format 0
	MCC, MNC   string
	RSRP, RSRQ float64
	SINR       float64
}

// Outage is a stretch of a simulated drive without network: from After, for For.
type Outage struct{ After, For time.Duration }

// DriveProfile is the signal of an ambulance crossing a city and its outskirts: the
// RSRP swings between -75 dBm (next to a site) and -118 dBm (between sites) over
// period, the technology falls from NR5G-SA through NR5G-NSA to LTE as it weakens,
// and there is no network at all during the outages (a tunnel, a dead zone).
func DriveProfile(period time.Duration, outages ...Outage) func(elapsed time.Duration) (Cell, bool) {
	if period <= 0 {
		period = 2 * time.Minute
	}
	return func(at time.Duration) (Cell, bool) {
		for _, o := range outages {
			if at >= o.After && at < o.After+o.For {
				return Cell{}, false
			}
		}
		phase := math.Mod(at.Seconds(), period.Seconds()) / period.Seconds()
		weak := 0.5 - 0.5*math.Cos(2*math.Pi*phase) // 0 at a site, 1 between sites
		c := Cell{Operator: "CHINA MOBILE", MCC: "460", MNC: "00",
			RSRP: math.Round(-75 - 43*weak), RSRQ: math.Round(-8 - 9*weak), SINR: math.Round(25 - 28*weak)}
		switch {
		case weak < 0.4:
			c.Technology = NR5GSA
		case weak < 0.75:
			c.Technology = NR5GNSA
		default:
			c.Technology = LTE
		}
		return c, true
	}
}

// SimConfig configures the module simulator.
type SimConfig struct {
	// Profile gives the cell at the time since the start; nil is DriveProfile(2 min).
	Profile func(elapsed time.Duration) (Cell, bool)
	// SIM is the SIM state AT+CPIN? reports ("READY"); "NOT INSERTED" answers
	// +CME ERROR: 10, as modules do.
	SIM string
	// NoEcho starts with echo off; real modules start with it on (ATE1).
	NoEcho bool
	// URCEvery, if set, interleaves a URC into a response that often, as modules do
	// when a report falls due mid-answer.
	URCEvery time.Duration
	Now      func() time.Time
}

// Simulate answers AT commands on rw like a Quectel RM520N until ctx ends or rw
// fails. Only the commands a box polls with (and ATE0/ATE1, ATI, AT) are known; any
// other answers ERROR.
func Simulate(ctx context.Context, rw io.ReadWriter, cfg SimConfig) error {
	if cfg.Profile == nil {
		cfg.Profile = DriveProfile(0)
	}
	if cfg.SIM == "" {
		cfg.SIM = "READY"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &simModule{cfg: cfg, w: rw, echo: !cfg.NoEcho, start: cfg.Now(), lastURC: cfg.Now()}
	lines := make(chan string)
	errc := make(chan error, 1)
	go func() {
		br := bufio.NewReader(rw)
		for {
			l, err := br.ReadString('\r')
			if err != nil {
				errc <- err
				return
			}
			l = strings.TrimSpace(l)
			if len(l) > MaxLine {
				l = l[:MaxLine]
			}
			select {
			case lines <- l:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("modem simulator: read: %w", err)
		case l := <-lines:
			if l == "" {
				continue
			}
			if err := s.answer(l); err != nil {
				return err
			}
		}
	}
}

type simModule struct {
	cfg     SimConfig
	w       io.Writer
	echo    bool
	start   time.Time
	lastURC time.Time
}

func (s *simModule) answer(cmd string) error {
	now := s.cfg.Now()
	cell, inService := s.cfg.Profile(now.Sub(s.start))
	var out []string
	if s.echo {
		out = append(out, cmd)
	}
	lines, final := s.respond(strings.ToUpper(cmd), cell, inService)
	for i, l := range lines {
		out = append(out, "", l)
		if i == 0 && s.cfg.URCEvery > 0 && now.Sub(s.lastURC) >= s.cfg.URCEvery {
			s.lastURC = now
			// A signal report falls due in the middle of the answer.
			out = append(out, "", fmt.Sprintf(`+QIND: "csq",%d,99`, csqOf(cell, inService)))
		}
	}
	out = append(out, "", final)
	_, err := io.WriteString(s.w, strings.Join(out, "\r\n")+"\r\n")
	if err != nil {
		return fmt.Errorf("modem simulator: write: %w", err)
	}
	return nil
}

func (s *simModule) respond(cmd string, c Cell, in bool) ([]string, string) {
	switch cmd {
	case "AT":
		return nil, "OK"
	case "ATE0":
		s.echo = false
		return nil, "OK"
	case "ATE1":
		s.echo = true
		return nil, "OK"
	case "ATI":
		return []string{"Quectel", "RM520N-GL", "Revision: RM520NGLAAR03A04M4G (simulated)"}, "OK"
	case "AT+CPIN?":
		if s.cfg.SIM == "NOT INSERTED" {
			return nil, "+CME ERROR: 10"
		}
		return []string{"+CPIN: " + s.cfg.SIM}, "OK"
	case "AT+CSQ":
		return []string{fmt.Sprintf("+CSQ: %d,99", csqOf(c, in))}, "OK"
	case "AT+COPS?":
		if !in || s.cfg.SIM != "READY" {
			return []string{"+COPS: 0"}, "OK"
		}
		return []string{fmt.Sprintf(`+COPS: 0,0,"%s",%d`, c.Operator, copsAcT(c.Technology))}, "OK"
	case "AT+CREG?", "AT+CEREG?", "AT+C5GREG?":
		prefix := strings.TrimSuffix(strings.TrimPrefix(cmd, "AT"), "?")
		stat := 2
		if in && s.cfg.SIM == "READY" {
			stat = 1
			if prefix == "+C5GREG" && c.Technology != NR5GSA {
				stat = 0 // NR registration only in SA; NSA registers on EPS
			}
		}
		return []string{fmt.Sprintf("%s: 0,%d", prefix, stat)}, "OK"
	case `AT+QENG="SERVINGCELL"`:
		return qengLines(c, in && s.cfg.SIM == "READY"), "OK"
	}
	return nil, "ERROR"
}

func csqOf(c Cell, in bool) int {
	if !in {
		return 99
	}
	// RSSI is some 20 dB above RSRP on a 20 MHz carrier; CSQ steps 2 dB from -113.
	return max(0, min(31, int((c.RSRP+20+113)/2)))
}

func copsAcT(t Technology) int {
	switch t {
	case NR5GSA:
		return 11
	case NR5GNSA:
		return 13
	}
	return 7
}

// qengLines renders the serving cell in the module's shapes (see ParseQENG).
func qengLines(c Cell, in bool) []string {
	if !in {
		return []string{`+QENG: "servingcell","SEARCH"`}
	}
	switch c.Technology {
	case NR5GSA:
		return []string{fmt.Sprintf(`+QENG: "servingcell","NOCONN","NR5G-SA","TDD",%s,%s,1A2B3C4,505,D00,504990,41,12,%.0f,%.0f,%.0f,1,31`, c.MCC, c.MNC, c.RSRP, c.RSRQ, c.SINR)}
	case NR5GNSA:
		return []string{
			`+QENG: "servingcell","CONNECT"`,
			fmt.Sprintf(`+QENG: "LTE","FDD",%s,%s,5F1EA15,221,1300,3,5,5,DE10,%.0f,%.0f,%.0f,%.0f,10,-,-`, c.MCC, c.MNC, c.RSRP-4, c.RSRQ, c.RSRP+30, c.SINR-3),
			fmt.Sprintf(`+QENG: "NR5G-NSA",%s,%s,747,%.0f,%.0f,%.0f,627264,78,12,1`, c.MCC, c.MNC, c.RSRP, c.SINR, c.RSRQ),
		}
	}
	return []string{fmt.Sprintf(`+QENG: "servingcell","NOCONN","LTE","FDD",%s,%s,5F1EA15,221,1300,3,5,5,DE10,%.0f,%.0f,%.0f,%.0f,10,-,-`, c.MCC, c.MNC, c.RSRP, c.RSRQ, c.RSRP+30, c.SINR)}
}
