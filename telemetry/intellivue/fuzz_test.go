package intellivue

import (
	"bytes"
	"testing"
	"time"

	"lifeline/telemetry"
)

// sampleMessages returns user data of every message kind, for seeds.
func sampleMessages(tb testing.TB) [][]byte {
	var out [][]byte
	for _, m := range loadMessages(tb) {
		out = append(out, m)
	}
	out = append(out, AssociationResponse(UserInfo{SystemType: systemServer, MaxMTUTx: 1000}))
	ev := EventReport{Object: MDS, Time: 5, Type: EventMDSCreate, MDS: MDS, MDSAttrs: []AVA{{AttrTimeRel, u32Value(5)}}}
	m := Message{RO: ROInvoke, InvokeID: 1, Command: CmdConfirmedEventReport, Body: ev.Marshal()}
	out = append(out, m.Marshal())
	r := PollReply{Ext: true, PollNumber: 2, ObjClass: ClassRTSA, Contexts: []ContextPoll{{Objects: []ObservationPoll{{Handle: 0x100, Attrs: []AVA{
		{AttrSaValObs, SaObs{PhysioID: NomECGII, Samples: []byte{0x08, 0x00, 0x08, 0x10}}.Encode()},
		{AttrSaSpec, SaSpec{ArraySize: 2, SampleSize: 16, SignificantBits: 14}.Encode()},
		{AttrScaleSpec, Scale{LowerAbs: MakeFloat(-10.24, 2), UpperAbs: MakeFloat(10.24, 2), UpperScaled: 4096}.Encode()},
		{AttrSamplePeriod, u32Value(16)}, {AttrUnitCode, u16Value(DimMilliVolt)},
	}}}}}}
	m = Message{RO: ROLinkedResult, LinkedState: LinkedFirst, LinkedCount: 1, InvokeID: 2, Command: CmdConfirmedAction, Body: r.Marshal()}
	out = append(out, m.Marshal())
	r = PollReply{Ext: true, PollNumber: 3, ObjClass: ClassNumeric, Contexts: []ContextPoll{{Objects: []ObservationPoll{
		{Handle: 1, Attrs: []AVA{{AttrNuValObs, NuObs{NomECGHeartRate, 0, DimBeatPerMin, MakeFloat(72, 0)}.Encode()}}},
		{Handle: 8, Attrs: []AVA{{AttrNuCmpdValObs, EncodeNuCmpd([]NuObs{{NomNIBPSys, 0, DimMMHg, MakeFloat(120, 0)}})}}},
	}}}}
	m = Message{RO: ROResult, InvokeID: 3, Command: CmdConfirmedAction, Body: r.Marshal()}
	out = append(out, m.Marshal())
	r = PollReply{Ext: true, PollNumber: 4, ObjClass: ClassAlertMon, Contexts: []ContextPoll{{Objects: []ObservationPoll{
		{Handle: 0x200, Attrs: []AVA{{AttrAlarmsP, EncodeAlarmList([]DevAlarm{{Source: NomSpO2, Type: AlarmMedP, Text: "**SpO2 LOW"}})}}}}}}}
	m = Message{RO: ROResult, InvokeID: 4, Command: CmdConfirmedAction, Body: r.Marshal()}
	out = append(out, m.Marshal())
	return out
}

// FuzzDeframer: any byte stream yields only frames that reframe to themselves.
func FuzzDeframer(f *testing.F) {
	for _, m := range sampleMessages(f) {
		f.Add(Frame(m))
	}
	f.Add([]byte{0xC0, 0x7D, 0xC1, 0x7D, 0x7D, 0xC0, 0xC1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Deframer
		d.Feed(data, func(m []byte) {
			var d2 Deframer
			var back []byte
			d2.Feed(Frame(m), func(b []byte) { back = append([]byte(nil), b...) }, func(e *FrameError) { t.Fatalf("reframed message dropped: %v", e) })
			if !bytes.Equal(back, m) {
				t.Fatal("reframing changed the message")
			}
		}, func(*FrameError) {})
	})
}

// FuzzMessage feeds arbitrary user data to every message and attribute decoder.
func FuzzMessage(f *testing.F) {
	for _, m := range sampleMessages(f) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		ParseAssociation(data)
		m, err := ParseMessage(data)
		if err != nil {
			return
		}
		ParseEventReport(m.Body)
		ParsePollRequest(m.Body)
		r, err := ParsePollReply(m.Body)
		if err != nil {
			return
		}
		for _, c := range r.Contexts {
			for _, o := range c.Objects {
				for _, a := range o.Attrs {
					ParseNuObs(a.Value)
					ParseNuCmpd(a.Value)
					ParseSaObs(a.Value)
					ParseSaCmpd(a.Value)
					ParseSaSpec(a.Value)
					ParseScale(a.Value)
					ParseAlarmList(a.Value)
				}
			}
		}
	})
}

// discardPort takes the driver's answers.
type discardPort struct{}

func (discardPort) Read([]byte) (int, error)           { return 0, nil }
func (discardPort) Write(p []byte) (int, error)        { return len(p), nil }
func (discardPort) SetReadTimeout(time.Duration) error { return nil }

// FuzzDriverConn pushes arbitrary bytes through the driver's whole decoding path, in
// every phase, and checks that it only emits well-formed events.
func FuzzDriverConn(f *testing.F) {
	var all []byte
	for _, m := range sampleMessages(f) {
		f.Add(Frame(m))
		all = append(all, Frame(m)...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, data []byte) {
		sink := telemetry.SinkFunc(func(e telemetry.Event) {
			switch v := e.(type) {
			case *telemetry.Numeric:
				if v.Unit == "" || v.Code == 0 {
					t.Fatalf("malformed numeric %+v", v)
				}
			case *telemetry.Wave:
				if v.Rate <= 0 || v.Unit == "" || v.Code == 0 {
					t.Fatalf("malformed wave %+v", v)
				}
			}
		})
		c := newConn(New(Config{Logger: quietLogger()}), discardPort{}, sink)
		now := time.Unix(1700000000, 0)
		for _, ph := range []phase{phaseAssociating, phaseWaitMDS, phaseConnected} {
			c.phase = ph
			if err := c.feed(data, now); err != nil {
				t.Fatal(err)
			}
			if err := c.timers(now.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	})
}
