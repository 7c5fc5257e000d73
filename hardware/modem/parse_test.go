package modem

import (
	"strings"
	"testing"
)

// Response examples. Sources:
//   - nsaManual: the NR5G-NSA line of AT+QENG="servingcell" as printed in Quectel's
//     "RG50xQ&RM5xxQ Series 5G Network Searching Scheme Introduction" V1.0
//     (2021-07-12), reproduced in the RM500U and RG520N/RM520N AT manuals (note: no
//     space after the colon in the manual).
//   - lteRM520N: an RM520N-GL on Verizon band 66, from a modem transcript published
//     with the open-source "cellat" test suite.
//   - lteNSAItaly: the LTE anchor line of an RM520N on an Italian EN-DC network, as
//     published in a public RM520N monitoring script.
//   - the 27.007 lines (+CPIN, +COPS, +CREG, +CEREG, +C5GREG, +CSQ) in the syntax of
//     3GPP TS 27.007 and the Quectel RM500Q/RM520N AT Commands Manuals.
const (
	nsaManual   = `+QENG:"NR5G-NSA",460,01,747,-71,13,-11,627264,78,12,1`
	lteRM520N   = `+QENG: "servingcell","NOCONN","LTE","FDD",311,480,334220,221,66536,66,5,5,D00,-96,-11,-56,14,0,-,29`
	lteNSAItaly = `+QENG: "LTE","FDD",222,01,4940206,427,1350,3,5,5,BFF,-94,-15,-58,9,5,100,-`
	saLayout    = `+QENG: "servingcell","NOCONN","NR5G-SA","TDD",311,480,1A2B3C4,505,D00,504990,78,12,-88,-11,15,1,31`
)

func TestParseQENGShapes(t *testing.T) {
	for _, c := range []struct {
		name  string
		lines []string
		want  ServingCell
	}{
		{"LTE, RM520N transcript", []string{lteRM520N},
			ServingCell{State: "NOCONN", Technology: LTE, MCC: "311", MNC: "480", RSRP: -96, RSRQ: -11, SINR: 14, HasRSRP: true, HasRSRQ: true, HasSINR: true}},
		{"NR5G-SA", []string{saLayout},
			ServingCell{State: "NOCONN", Technology: NR5GSA, MCC: "311", MNC: "480", RSRP: -88, RSRQ: -11, SINR: 15, HasRSRP: true, HasRSRQ: true, HasSINR: true}},
		{"NR5G-NSA, manual's NR line with an LTE anchor", []string{`+QENG: "servingcell","CONNECT"`, lteNSAItaly, nsaManual},
			ServingCell{State: "CONNECT", Technology: NR5GNSA, MCC: "460", MNC: "01", RSRP: -71, SINR: 13, RSRQ: -11, HasRSRP: true, HasRSRQ: true, HasSINR: true, LTERSRP: -94, HasLTERSRP: true}},
		{"NSA with the NR leg not measured", []string{`+QENG: "servingcell","NOCONN"`, lteNSAItaly, `+QENG: "NR5G-NSA",222,01,-,-,-,-,-,-,-,-`},
			ServingCell{State: "NOCONN", Technology: LTE, MCC: "222", MNC: "01", RSRP: -94, RSRQ: -15, SINR: 9, HasRSRP: true, HasRSRQ: true, HasSINR: true}},
		{"searching", []string{`+QENG: "servingcell","SEARCH"`}, ServingCell{State: "SEARCH"}},
	} {
		got, err := ParseQENG(c.lines)
		if err != nil || got != c.want {
			t.Errorf("%s:\n got %+v %v\nwant %+v", c.name, got, err, c.want)
		}
	}
	if _, err := ParseQENG([]string{`+QENG: "servingcell","NOCONN","NR5G-SA","TDD",311`}); err == nil {
		t.Error("a cut NR5G-SA line parsed")
	}
}

func TestParse27007(t *testing.T) {
	if st, ok, err := ParseCPIN("+CPIN: READY"); st != "READY" || !ok || err != nil {
		t.Errorf("CPIN %q %v %v", st, ok, err)
	}
	if st, ok, _ := ParseCPIN("+CPIN: SIM PIN"); st != "SIM PIN" || ok {
		t.Errorf("CPIN SIM PIN: %q %v", st, ok)
	}
	if op, act, err := ParseCOPS(`+COPS: 0,0,"CHINA MOBILE",13`); op != "CHINA MOBILE" || act != 13 || err != nil {
		t.Errorf("COPS %q %d %v", op, act, err)
	}
	if op, _, _ := ParseCOPS(`+COPS: 0`); op != "" {
		t.Errorf("COPS without operator: %q", op)
	}
	for line, want := range map[string]RegState{
		"+CREG: 0,1":                         RegHome,
		"+CEREG: 2,5,\"DE10\",\"5F1EA15\",7": RegRoaming,
		"+C5GREG: 0,2":                       RegSearching,
		"+CREG: 1":                           RegHome, // URC form
		"+CEREG: 1,\"DE10\",\"5F1EA15\",7":   RegHome, // URC form with location
	} {
		prefix := line[:strings.Index(line, ":")+1]
		if got, err := ParseReg(line, prefix); got != want || err != nil {
			t.Errorf("%s: %v %v, want %v", line, got, err, want)
		}
	}
	if rssi, ok, err := ParseCSQ("+CSQ: 28,99"); rssi != -57 || !ok || err != nil {
		t.Errorf("CSQ %v %v %v", rssi, ok, err)
	}
	if _, ok, err := ParseCSQ("+CSQ: 99,99"); ok || err != nil {
		t.Errorf("CSQ unknown: %v %v", ok, err)
	}
	if _, _, err := ParseCSQ("+CSQ: 45,0"); err == nil {
		t.Error("CSQ 45 accepted")
	}
}

func TestBars(t *testing.T) {
	for _, c := range []struct {
		q    LinkQuality
		want int
	}{
		{LinkQuality{Registered: true, HasRSRP: true, RSRP: -80}, 5},
		{LinkQuality{Registered: true, HasRSRP: true, RSRP: -100}, 3},
		{LinkQuality{Registered: true, HasRSRP: true, RSRP: -130}, 0},
		{LinkQuality{Registered: true, HasRSSI: true, RSSI: -90}, 2},
		{LinkQuality{Registered: false, HasRSRP: true, RSRP: -70}, 0},
	} {
		if got := c.q.bars(); got != c.want {
			t.Errorf("%+v: %d bars, want %d", c.q, got, c.want)
		}
	}
}

// FuzzParseResponse feeds arbitrary module output to every response parser: none may
// panic, and a parsed serving cell's measurements are finite.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{nsaManual, lteRM520N, lteNSAItaly, saLayout,
		`+QENG: "servingcell","CONNECT"` + "\n" + lteNSAItaly + "\n" + nsaManual,
		"+CPIN: READY", `+COPS: 0,0,"CHINA MOBILE",13`, "+CREG: 0,1", `+CEREG: 2,5,"DE10","5F1EA15",7`, "+C5GREG: 0,2", "+CSQ: 28,99",
		`+QENG: "servingcell","NOCONN","NR5G-SA"`, `+QENG: "servingcell"`, "+CME ERROR: 10", `+QIND: "csq",20,99`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines := strings.Split(s, "\n")
		if c, err := ParseQENG(lines); err == nil {
			for _, v := range []float64{c.RSRP, c.RSRQ, c.SINR, c.LTERSRP} {
				if v != v || v > 1e6 || v < -1e6 {
					t.Fatalf("measurement %v from %q", v, s)
				}
			}
		}
		for _, l := range lines {
			ParseCPIN(l)
			ParseCOPS(l)
			ParseCSQ(l)
			for _, p := range []string{"+CREG:", "+CEREG:", "+C5GREG:"} {
				ParseReg(l, p)
			}
		}
	})
}
