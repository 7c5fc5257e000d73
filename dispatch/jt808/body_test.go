package jt808

import (
	"bytes"
	"testing"
	"time"
)

func TestBodiesRoundTripBothEditions(t *testing.T) {
	for _, e := range []Edition{Edition2013, Edition2019} {
		reg := Register{Province: 44, City: 100, Maker: "LIFEL", Model: "EDGE-1", TerminalID: "BOX0001", PlateColor: 1, Plate: "粤A12345"}
		b := reg.Marshal(e)
		mk, md, id := registerWidths(e)
		if len(b) != 4+mk+md+id+1+len(GBK(reg.Plate)) {
			t.Errorf("%v: register body %d bytes", e, len(b))
		}
		if got, err := ParseRegister(b, e); err != nil || got != reg {
			t.Errorf("%v: register %+v %v", e, got, err)
		}
		auth := Authenticate{Code: "abc123"}
		if e == Edition2019 {
			auth.IMEI, auth.Software = "867000000000001", "lifeline 1.0"
		}
		if got, err := ParseAuthenticate(auth.Marshal(e), e); err != nil || got != auth {
			t.Errorf("%v: authenticate %+v %v", e, got, err)
		}
	}
	// 2013's fixed fields are shorter: a long model is cut, not overflowed.
	long := Register{Model: "A-MODEL-NAME-LONGER-THAN-TWENTY-BYTES"}
	if got, _ := ParseRegister(long.Marshal(Edition2013), Edition2013); got.Model != "A-MODEL-NAME-LONGER-" {
		t.Errorf("cut model %q", got.Model)
	}
	pa := ParamsAnswer{Serial: 7, Params: []Param{DWORDParam(ParamReportInterval, 5), StringParam(ParamMainServer, "dispatch.example")}}
	got, err := ParseParamsAnswer(pa.Marshal())
	if err != nil || got.Serial != 7 || len(got.Params) != 2 || got.Params[1].String() != "dispatch.example" {
		t.Fatalf("params answer %+v %v", got, err)
	}
	if v, err := got.Params[0].DWORD(); v != 5 || err != nil {
		t.Errorf("interval %v %v", v, err)
	}
	if _, err := got.Params[1].DWORD(); err == nil {
		t.Error("a string read as a DWORD")
	}
	la := LocationAnswer{Serial: 9, Location: Location{Lat: -33.8688, Lon: 151.2093, Time: time.Date(2026, 12, 2, 1, 2, 3, 0, time.UTC), Alarm: AlarmEmergency}}
	back, err := ParseLocationAnswer(la.Marshal())
	if err != nil || back.Serial != 9 || back.Location.Lat != -33.8688 || back.Location.Lon != 151.2093 || back.Location.Alarm != AlarmEmergency {
		t.Errorf("location answer %+v %v", back, err)
	}
	if !bytes.Equal(back.Location.Marshal(), la.Location.Marshal()) {
		t.Error("location answer does not re-marshal")
	}
	// Truncated bodies are errors, not panics.
	for _, b := range [][]byte{{}, {0, 1}, pa.Marshal()[:5]} {
		if _, err := ParseParamsAnswer(b); err == nil {
			t.Errorf("params answer % x parsed", b)
		}
	}
}
