package modem

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrResponse marks a response line that does not parse.
var ErrResponse = errors.New("modem: malformed response")

// fields splits the value of "+CMD: a,b,"c"" into unquoted, trimmed fields.
func fields(line, prefix string) ([]string, error) {
	if !strings.HasPrefix(line, prefix) {
		return nil, fmt.Errorf("%w: %q does not start with %q", ErrResponse, line, prefix)
	}
	rest := strings.TrimSpace(line[len(prefix):])
	var out []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if quoted {
		return nil, fmt.Errorf("%w: unterminated quote in %q", ErrResponse, line)
	}
	return append(out, strings.TrimSpace(cur.String())), nil
}

// number parses a measurement field; "-" and "" mean not available.
func number(s string) (float64, bool) {
	if s == "" || s == "-" {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != v || v > 1e6 || v < -1e6 {
		return 0, false
	}
	return v, true
}

// ParseCPIN reads "+CPIN: READY" (or SIM PIN, SIM PUK, …).
func ParseCPIN(line string) (state string, ready bool, err error) {
	f, err := fields(line, "+CPIN:")
	if err != nil || len(f) < 1 || f[0] == "" {
		return "", false, fmt.Errorf("%w: %q", ErrResponse, line)
	}
	return f[0], f[0] == "READY", nil
}

// ParseCOPS reads "+COPS: <mode>[,<format>,<oper>[,<AcT>]]": the operator (long,
// short or numeric, as the module's format is set) and the access technology number
// (7 E-UTRAN, 11 NR connected to 5GCN, 12 NG-RAN, 13 E-UTRA-NR dual connectivity).
func ParseCOPS(line string) (operator string, act int, err error) {
	f, err := fields(line, "+COPS:")
	if err != nil {
		return "", -1, err
	}
	act = -1
	if len(f) >= 3 {
		operator = f[2]
	}
	if len(f) >= 4 {
		if n, err := strconv.Atoi(f[3]); err == nil {
			act = n
		}
	}
	return operator, act, nil
}

// RegState is a 3GPP registration status (27.007 +CREG/+CEREG/+C5GREG <stat>).
type RegState int

// Registration states.
const (
	RegNotSearching RegState = 0
	RegHome         RegState = 1
	RegSearching    RegState = 2
	RegDenied       RegState = 3
	RegUnknown      RegState = 4
	RegRoaming      RegState = 5
)

// Registered reports home or roaming registration (including SMS-only 6/7 and
// emergency-only excluded).
func (s RegState) Registered() bool { return s == RegHome || s == RegRoaming || s == 6 || s == 7 }

// ParseReg reads "+CREG: <n>,<stat>[,…]" as answered to the read command, or the
// URC form "+CREG: <stat>[,…]" (the module reports a change unasked when <n> > 0).
// prefix is "+CREG:", "+CEREG:" or "+C5GREG:".
func ParseReg(line, prefix string) (RegState, error) {
	f, err := fields(line, prefix)
	if err != nil {
		return 0, err
	}
	// The read form is <n>,<stat>[,<lac>,<ci>[,<AcT>]]; the URC form drops <n>.
	// A status is one or two digits; a location area code is four or more hex
	// digits, so the second field tells the forms apart.
	i := 0
	if len(f) >= 2 && len(f[1]) <= 2 && isDigits(f[1]) {
		i = 1
	}
	if i >= len(f) {
		return 0, fmt.Errorf("%w: %q has no status", ErrResponse, line)
	}
	n, err := strconv.Atoi(f[i])
	if err != nil || n < 0 || n > 11 {
		return 0, fmt.Errorf("%w: status %q in %q", ErrResponse, f[i], line)
	}
	return RegState(n), nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// ParseCSQ reads "+CSQ: <rssi>,<ber>" into dBm (27.007: 0 is -113 dBm or less, 31 is
// -51 dBm or more, 99 unknown).
func ParseCSQ(line string) (rssi float64, ok bool, err error) {
	f, err := fields(line, "+CSQ:")
	if err != nil || len(f) < 1 {
		return 0, false, fmt.Errorf("%w: %q", ErrResponse, line)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 || (n > 31 && n != 99) {
		return 0, false, fmt.Errorf("%w: rssi %q", ErrResponse, f[0])
	}
	if n == 99 {
		return 0, false, nil
	}
	return float64(-113 + 2*n), true, nil
}

// ServingCell is what AT+QENG="servingcell" says.
type ServingCell struct {
	State                     string // SEARCH, LIMSRV, NOCONN, CONNECT
	Technology                Technology
	MCC, MNC                  string
	RSRP, RSRQ, SINR          float64
	HasRSRP, HasRSRQ, HasSINR bool
	LTERSRP                   float64 // the anchor on NR5G-NSA
	HasLTERSRP                bool
}

// servingLine reads the "servingcell" line: the state, and an NR5G-SA cell itself,
// or an LTE cell's fields (returned) for the caller.
func (c *ServingCell) servingLine(f []string, l string) (lte []string, err error) {
	if len(f) >= 2 {
		c.State = f[1]
	}
	if len(f) < 3 {
		return nil, nil
	}
	switch Technology(f[2]) {
	case NR5GSA:
		c.Technology = NR5GSA
		if len(f) < 17 {
			return nil, fmt.Errorf("%w: NR5G-SA line has %d fields, want 17: %q", ErrResponse, len(f), l)
		}
		c.MCC, c.MNC = f[4], f[5]
		c.RSRP, c.HasRSRP = number(f[12])
		c.RSRQ, c.HasRSRQ = number(f[13])
		c.SINR, c.HasSINR = number(f[14])
	case LTE:
		return f[2:], nil
	default:
		c.Technology = Technology(f[2])
	}
	return nil, nil
}

// ParseQENG reads the lines of AT+QENG="servingcell" in its three shapes (Quectel
// RM500Q/RM520N AT manuals):
//
//	+QENG: "servingcell",<state>,"NR5G-SA",<duplex>,<MCC>,<MNC>,<cellID>,<PCID>,<TAC>,<ARFCN>,<band>,<NR_DL_bw>,<RSRP>,<RSRQ>,<SINR>,<scs>,<srxlev>
//	+QENG: "servingcell",<state>,"LTE",<is_tdd>,<MCC>,<MNC>,<cellID>,<PCID>,<earfcn>,<band>,<UL_bw>,<DL_bw>,<TAC>,<RSRP>,<RSRQ>,<RSSI>,<SINR>,<CQI>,<tx_power>,<srxlev>
//	+QENG: "servingcell",<state>                 (EN-DC: the cells follow)
//	+QENG: "LTE",<is_tdd>,<MCC>,<MNC>,<cellID>,<PCID>,<earfcn>,<band>,<UL_bw>,<DL_bw>,<TAC>,<RSRP>,<RSRQ>,<RSSI>,<SINR>,<CQI>,<tx_power>,<srxlev>
//	+QENG: "NR5G-NSA",<MCC>,<MNC>,<PCID>,<RSRP>,<SINR>,<RSRQ>,<ARFCN>,<band>,<NR_DL_bw>,<scs>
//
// Note the NSA line's order: SINR before RSRQ. RM5xx modules report SINR in dB.
// Measurements given as "-" are unknown. Lines of other shapes are ignored.
func ParseQENG(lines []string) (ServingCell, error) {
	var c ServingCell
	var lte, nsa []string
	seen := false
	for _, l := range lines {
		f, err := fields(l, "+QENG:")
		if err != nil || len(f) == 0 {
			continue
		}
		switch f[0] {
		case "servingcell":
			seen = true
			if l, err := c.servingLine(f, l); err != nil {
				return c, err
			} else if l != nil {
				lte = l
			}
		case "LTE":
			lte = f
		case "NR5G-NSA":
			nsa = f
		}
	}
	if !seen {
		return c, fmt.Errorf("%w: no \"servingcell\" line in %d lines", ErrResponse, len(lines))
	}
	if lte != nil {
		if len(lte) < 16 {
			return c, fmt.Errorf("%w: LTE line has %d fields, want 18", ErrResponse, len(lte))
		}
		c.Technology = LTE
		c.MCC, c.MNC = lte[2], lte[3]
		c.RSRP, c.HasRSRP = number(lte[11])
		c.RSRQ, c.HasRSRQ = number(lte[12])
		c.SINR, c.HasSINR = number(lte[14])
	}
	if len(nsa) >= 7 {
		rsrp, ok := number(nsa[4])
		if ok {
			c.LTERSRP, c.HasLTERSRP = c.RSRP, c.HasRSRP
			c.Technology = NR5GNSA
			c.MCC, c.MNC = nsa[1], nsa[2]
			c.RSRP, c.HasRSRP = rsrp, true
			c.SINR, c.HasSINR = number(nsa[5])
			c.RSRQ, c.HasRSRQ = number(nsa[6])
		}
	}
	return c, nil
}
