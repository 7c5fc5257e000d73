package intellivue

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"lifeline/telemetry"
)

func loadMessages(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/messages.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<16)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		name, h, _ := strings.Cut(line, "|")
		b, err := hex.DecodeString(strings.Join(strings.Fields(h), ""))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[strings.TrimSpace(name)] = b
	}
	return out
}

// TestFCSCheckValue uses the check value of CRC-16/X-25, the RFC 1662 FCS, from the CRC
// catalogue: FCS("123456789") = 0x906E.
func TestFCSCheckValue(t *testing.T) {
	if got := FCS([]byte("123456789")); got != 0x906E {
		t.Fatalf("FCS = %#04x, want 0x906e", got)
	}
	// RFC 1662 §C.2: running the FCS over data plus its FCS (LSB first) gives the "good
	// FCS" residue 0xF0B8, complemented here to 0x0F47.
	d := []byte{0x11, 0x01, 0x00, 0x02, 0xAB, 0xCD}
	f := FCS(d)
	if r := ^FCS(append(d, byte(f), byte(f>>8))); r != 0xF0B8 {
		t.Fatalf("residue %#04x, want 0xf0b8", r)
	}
}

// TestMessagesByteExact rebuilds the box's messages published for the Data Export
// interface and compares them byte for byte.
func TestMessagesByteExact(t *testing.T) {
	want := loadMessages(t)
	u := UserInfo{SystemType: systemClient, MinPollPeriod: 0x09C4, MaxMTURx: 0x09C4, MaxMTUTx: 0x03E8,
		Options: PollOptDynCreate | PollOptDynDelete, ExtOptions: PollExtNu1s | PollExtRTSA | PollExtEnum}
	check := func(name string, got []byte) {
		t.Helper()
		if !bytes.Equal(got, want[name]) {
			t.Errorf("%s:\n got %x\nwant %x", name, got, want[name])
		}
	}
	check("association_request_ext_poll", AssociationRequest(u))
	check("release_request", ReleaseRequest())
	check("release_response", ReleaseResponse())
	check("abort", Abort())
	m := Message{RO: ROResult, InvokeID: 1, Command: CmdConfirmedEventReport, Body: EventResult(MDS, 0x000ABD00, EventMDSCreate)}
	check("mds_create_result", m.Marshal())
	poll := func(invoke uint16, p PollRequest) []byte {
		m := Message{RO: ROInvoke, InvokeID: invoke, Command: CmdConfirmedAction, Body: p.Marshal()}
		return m.Marshal()
	}
	thirty := Rel(30 * time.Second)
	check("ext_poll_numerics_30s", poll(1, PollRequest{Ext: true, PollNumber: 1, ObjClass: ClassNumeric, Period: thirty}))
	check("ext_poll_waves_30s", poll(1, PollRequest{Ext: true, PollNumber: 2, ObjClass: ClassRTSA, Period: thirty}))
	check("keep_alive_mds_poll", poll(1, PollRequest{PollNumber: 1, ObjClass: ClassMDS, AttrGroup: AttrGroupMDSKeepAlive}))
	check("ext_poll_alerts_600s", poll(5, PollRequest{Ext: true, PollNumber: 4, ObjClass: ClassAlertMon, AttrGroup: AttrGroupAlertMon, Period: Rel(600 * time.Second)}))

	// And the decoders read them back.
	spdu, back, err := ParseAssociation(want["association_request_ext_poll"])
	if err != nil || spdu != SPDUConnect || back != u {
		t.Errorf("association request parsed as %x %+v %v", spdu, back, err)
	}
	msg, err := ParseMessage(want["ext_poll_alerts_600s"])
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePollRequest(msg.Body)
	if err != nil || !p.Ext || p.PollNumber != 4 || p.ObjClass != ClassAlertMon || p.Period.Duration() != 600*time.Second {
		t.Errorf("alert poll parsed as %+v %v", p, err)
	}
}

func TestFramingRoundTripAndDamage(t *testing.T) {
	ud := []byte{SPDUData, 0, 0, 2, 0xC0, 0xC1, 0x7D, 0x00, 0x5D}
	f := Frame(ud)
	if bytes.Count(f, []byte{0xC0}) != 1 || bytes.Count(f, []byte{0xC1}) != 1 {
		t.Fatalf("delimiters leaked: %x", f)
	}
	var d Deframer
	var got [][]byte
	var bad []string
	feed := func(p []byte) {
		d.Feed(p, func(m []byte) { got = append(got, append([]byte(nil), m...)) }, func(e *FrameError) { bad = append(bad, e.Reason) })
	}
	feed([]byte{0x55, 0xAA})
	feed(f)
	broken := append([]byte(nil), f...)
	broken[6] ^= 0x04
	feed(broken)
	feed(f[:len(f)-1]) // EOF lost: the next BOF ends it
	feed(f)
	if len(got) != 2 || !bytes.Equal(got[0], ud) {
		t.Fatalf("messages %x", got)
	}
	if strings.Join(bad, ",") != "fcs,no end of frame" || d.Skipped != 2 {
		t.Fatalf("drops %v skipped %d", bad, d.Skipped)
	}
}

func TestFloatAndTime(t *testing.T) {
	for _, c := range []struct {
		v   float64
		dec int
	}{{37.2, 1}, {-0.45, 2}, {120, 0}, {97, 0}, {0.001, 3}} {
		got, ok := MakeFloat(c.v, c.dec).Value()
		if !ok || math.Abs(got-c.v) > 1e-9 {
			t.Errorf("%v: got %v %v", c.v, got, ok)
		}
	}
	if _, ok := FloatNaN.Value(); ok {
		t.Error("NaN decoded as a number")
	}
	if v, _ := Float(0xFF000174).Value(); v != 37.2 {
		t.Errorf("0xFF000174 = %v, want 37.2", v)
	}
	now := time.Date(2026, 3, 4, 5, 6, 7, 890e6, time.UTC)
	back, ok := MakeAbsoluteTime(now).Time(time.UTC)
	if !ok || !back.Equal(now) {
		t.Errorf("absolute time %v %v", back, ok)
	}
	if _, ok := (AbsoluteTime{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}).Time(time.UTC); ok {
		t.Error("an unset clock decoded")
	}
}

// TestNomenclature pins the mapping of the monitor's ids to the model independently of
// the simulator, which shares the table with the driver.
func TestNomenclature(t *testing.T) {
	for _, c := range []struct {
		id   uint16
		code telemetry.Code
	}{
		{0x4182, telemetry.MDC_ECG_HEART_RATE}, {0x4BB8, telemetry.MDC_PULS_OXIM_SAT_O2},
		{0x4822, telemetry.MDC_PULS_OXIM_PULS_RATE}, {0x4A05, telemetry.MDC_PRESS_BLD_NONINV_SYS},
		{0x4A06, telemetry.MDC_PRESS_BLD_NONINV_DIA}, {0x4A07, telemetry.MDC_PRESS_BLD_NONINV_MEAN},
		{0x4A15, telemetry.MDC_PRESS_BLD_ART_ABP_SYS}, {0x50B0, telemetry.MDC_AWAY_CO2_ET},
		{0x4B48, telemetry.MDC_TEMP}, {0x0101, telemetry.MDC_ECG_ELEC_POTL_I}, {0x0102, telemetry.MDC_ECG_ELEC_POTL_II},
		{0x013D, telemetry.MDC_ECG_ELEC_POTL_III}, {0x0108, telemetry.MDC_ECG_ELEC_POTL_V6},
		{0x4BB4, telemetry.MDC_PULS_OXIM_PLETH}, {0x5000, telemetry.MDC_IMPED_TTHOR},
	} {
		if got, ok := Lookup(c.id); !ok || got != c.code {
			t.Errorf("physio 0x%04x -> %v, want %v", c.id, got, c.code)
		}
	}
	for code, ucum := range map[uint16]string{0x0220: "%", 0x0AA0: "/min", 0x0AE0: "/min", 0x0F20: "mm[Hg]", 0x17A0: "Cel", 0x10B2: "mV", 0x10C0: "Ohm", 0x0200: "1"} {
		if got, ok := Unit(code); !ok || got != ucum {
			t.Errorf("unit 0x%04x -> %q, want %q", code, got, ucum)
		}
	}
}
