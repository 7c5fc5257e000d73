package record

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/durable"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/physio"
)

// ambulanceRun publishes seconds of a 12-lead ECG at 500 Hz in 50-sample blocks (as a
// monitor delivers it), numerics each second and a VT alarm, and returns what it sent.
func ambulanceRun(bus *telemetry.Bus, seconds int) []telemetry.Message {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	sc := &physio.Scenario{VTAt: time.Second, VTFor: time.Second}
	ecg := physio.NewECG(sc, 500)
	var sent []telemetry.Message
	pub := func(ev telemetry.Event) {
		bus.Publish("monitor0", ev)
		sent = append(sent, telemetry.Message{Source: "monitor0", Event: ev})
	}
	for b := 0; b < seconds*10; b++ {
		start := t0.Add(time.Duration(b) * 100 * time.Millisecond)
		leads := make([][]float32, 12)
		for range 50 {
			v := ecg.Next()
			for l := range leads {
				leads[l] = append(leads[l], float32(int(v[l]*1000))/1000) // µV resolution
			}
		}
		for l, c := range telemetry.ECG12 {
			pub(&telemetry.Wave{Code: c, Unit: "mV", Rate: 500, Start: start, ReceiveTime: start.Add(100 * time.Millisecond), Samples: leads[l]})
		}
		if b%10 == 0 {
			st := sc.At(time.Duration(b) * 100 * time.Millisecond)
			pub(&telemetry.Numeric{Code: telemetry.MDC_ECG_HEART_RATE, Value: st.HR, Unit: "/min", MonitorTime: start, ReceiveTime: start})
			pub(&telemetry.Numeric{Code: telemetry.MDC_PULS_OXIM_SAT_O2, Value: st.SpO2, Unit: "%", MonitorTime: start, ReceiveTime: start})
		}
		if b == 10 {
			pub(&telemetry.Alarm{Priority: telemetry.PriorityHigh, Text: "VTACH", Code: telemetry.MDC_ECG_HEART_RATE, On: true, MonitorTime: start, ReceiveTime: start})
		}
	}
	return sent
}

func sameEvent(a, b telemetry.Event) bool {
	switch x := a.(type) {
	case *telemetry.Numeric:
		y, ok := b.(*telemetry.Numeric)
		return ok && x.Code == y.Code && x.Value == y.Value && x.Unit == y.Unit && x.MonitorTime.Equal(y.MonitorTime) && x.ReceiveTime.Equal(y.ReceiveTime)
	case *telemetry.Wave:
		y, ok := b.(*telemetry.Wave)
		if !ok || x.Code != y.Code || x.Rate != y.Rate || x.Unit != y.Unit || !x.Start.Equal(y.Start) || len(x.Samples) != len(y.Samples) {
			return false
		}
		for i := range x.Samples {
			if x.Samples[i] != y.Samples[i] {
				return false
			}
		}
		return true
	case *telemetry.Alarm:
		y, ok := b.(*telemetry.Alarm)
		return ok && x.Text == y.Text && x.On == y.On && x.Priority == y.Priority && x.Code == y.Code
	}
	return false
}

// TestRecorderKeepsEverythingInBatches: a 12-lead ECG at 500 Hz goes to disk in a few
// batched transactions, not one per sample, and reads back identical after reopening.
func TestRecorderKeepsEverythingInBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "box.db")
	store, err := durable.Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	bus := telemetry.NewBus(nil)
	rec, err := New(Config{Store: store, Bus: bus, FlushEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	sent := ambulanceRun(bus, 3)
	// Stop once the periodic flush has written a batch while running; stopping
	// flushes the rest.
	wait.For(t, 10*time.Second, "a batch written by the periodic flush", func() bool {
		n := 0
		store.ForEach(Bucket, func(_, _ []byte) error { n++; return nil })
		return n > 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	batches := 0
	store.ForEach(Bucket, func(_, _ []byte) error { batches++; return nil })
	if batches == 0 || batches > 10 {
		t.Errorf("%d batches for %d events: want a few fsyncs, not one per event", batches, len(sent))
	}
	store.Close()

	store, err = durable.Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	got, err := Load(store)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(sent) {
		t.Fatalf("loaded %d events, recorded %d", len(got), len(sent))
	}
	for i := range sent {
		if got[i].Source != "monitor0" || !sameEvent(sent[i].Event, got[i].Event) {
			t.Fatalf("event %d: got %+v, want %+v", i, got[i].Event, sent[i].Event)
		}
	}
	// A new recorder on the same store appends after what is there.
	rec2, err := New(Config{Store: store, Bus: telemetry.NewBus(nil)})
	if err != nil || rec2.seq != uint64(batches) {
		t.Fatalf("resumed at %d (%v), want %d", rec2.seq, err, batches)
	}
}

func TestExportHL7ParsesBack(t *testing.T) {
	bus := telemetry.NewBus(nil)
	sent := ambulanceRun(bus, 2)
	msgs := ExportHL7(sent, "AMB-7", time.Now())
	var back []telemetry.Event
	for _, raw := range msgs {
		m, err := hl7.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		res := hl7.Decode(m, time.Now(), time.UTC)
		if res.Ignored != 0 {
			t.Fatalf("ignored %d: %s", res.Ignored, res.FirstProb)
		}
		back = append(back, res.Events...)
	}
	// Same numerics, alarms and every sample of every lead.
	count := func(evs []telemetry.Event, k telemetry.Kind) int {
		n := 0
		for _, e := range evs {
			if e.Kind() == k {
				n++
			}
		}
		return n
	}
	var sentEvs []telemetry.Event
	for _, m := range sent {
		sentEvs = append(sentEvs, m.Event)
	}
	for _, k := range []telemetry.Kind{telemetry.KindNumeric, telemetry.KindWave, telemetry.KindAlarm} {
		if count(back, k) != count(sentEvs, k) {
			t.Fatalf("%s: %d back, %d recorded", k, count(back, k), count(sentEvs, k))
		}
	}
	bi := map[telemetry.Kind][]telemetry.Event{}
	for _, e := range back {
		bi[e.Kind()] = append(bi[e.Kind()], e)
	}
	si := map[telemetry.Kind]int{}
	for _, e := range sentEvs {
		g := bi[e.Kind()][si[e.Kind()]]
		si[e.Kind()]++
		switch x := e.(type) {
		case *telemetry.Numeric:
			y := g.(*telemetry.Numeric)
			if x.Code != y.Code || x.Value != y.Value || x.Unit != y.Unit || !x.MonitorTime.Equal(y.MonitorTime) {
				t.Fatalf("numeric %+v back as %+v", x, y)
			}
		case *telemetry.Wave:
			y := g.(*telemetry.Wave)
			if x.Code != y.Code || x.Rate != y.Rate || !x.Start.Equal(y.MonitorStart) || len(x.Samples) != len(y.Samples) {
				t.Fatalf("wave %s back as %s", x.Code, y.Code)
			}
			for i := range x.Samples {
				if x.Samples[i] != y.Samples[i] {
					t.Fatalf("%s sample %d: %v back as %v", x.Code, i, x.Samples[i], y.Samples[i])
				}
			}
		case *telemetry.Alarm:
			y := g.(*telemetry.Alarm)
			if x.Text != y.Text || x.On != y.On || x.Priority != y.Priority {
				t.Fatalf("alarm %+v back as %+v", x, y)
			}
		}
	}
}

// TestExportECGDcmdumpAndOrthanc: the General ECG object is valid for DCMTK, accepted by
// a real Orthanc, and its samples read back equal to the record at µV resolution.
func TestExportECGDcmdumpAndOrthanc(t *testing.T) {
	dcmdump := peers.Need(t, "dcmdump")[0]
	bus := telemetry.NewBus(nil)
	sent := ambulanceRun(bus, 3)
	file, series, err := ExportECG(sent, ECGOptions{PatientName: "Doe^Jane", PatientID: "AMB-7-0001", PatientSex: "F", Institution: "Ambulance 7"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(series.Leads) != 12 || len(series.Samples[0]) != 1500 || series.Missing != 0 {
		t.Fatalf("series: %d leads, %d samples, %d missing", len(series.Leads), len(series.Samples[0]), series.Missing)
	}
	path := filepath.Join(t.TempDir(), "ecg.dcm")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(dcmdump, "-E", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dcmdump: %v\n%s", err, out)
	}
	for _, want := range []string{"=GeneralECGWaveformStorage", "(003a,0005) US 12", "(003a,0010) UL 1500", "5.6.3-9-64", "(5400,1010) OW"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dcmdump output lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(string(out)), "error") || strings.Contains(string(out), "W: ") {
		t.Errorf("dcmdump complains:\n%s", out)
	}

	// Read it back with the DICOM library: the samples are the record's, in µV.
	ds, err := dicom.Parse(bytes.NewReader(file), int64(len(file)), nil)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := ds.FindElementByTag(tag.WaveformSequence)
	if err != nil {
		t.Fatal(err)
	}
	items := seq.Value.GetValue().([]*dicom.SequenceItemValue)
	var raw []byte
	for _, e := range items[0].GetValue().([]*dicom.Element) {
		if e.Tag == tag.WaveformData {
			raw = e.Value.GetValue().([]byte)
		}
	}
	if len(raw) != 2*12*1500 {
		t.Fatalf("waveform data %d bytes", len(raw))
	}
	for i := 0; i < 1500; i += 7 {
		for c := 0; c < 12; c++ {
			v := int16(uint16(raw[2*(i*12+c)]) | uint16(raw[2*(i*12+c)+1])<<8)
			if want := series.Samples[c][i]; v != int16(math.Round(float64(want)*1000)) {
				t.Fatalf("lead %d sample %d: %d µV, record %v mV", c, i, v, want)
			}
		}
	}

	o := pacstest.StartOrthanc(t)
	resp, err := http.Post(o.HTTPURL+"/instances", "application/dicom", bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("Orthanc refused the ECG: %s %s", resp.Status, body)
	}
	var st struct {
		ID     string
		Status string
	}
	json.Unmarshal(body, &st)
	if st.Status != "Success" {
		t.Fatalf("Orthanc: %s", body)
	}
	resp, err = http.Get(o.HTTPURL + "/instances/" + st.ID + "/simplified-tags")
	if err != nil {
		t.Fatal(err)
	}
	var tags map[string]any
	json.NewDecoder(resp.Body).Decode(&tags)
	resp.Body.Close()
	if tags["SOPClassUID"] != GeneralECGSOPClass || tags["Modality"] != "ECG" || tags["PatientID"] != "AMB-7-0001" {
		t.Errorf("Orthanc holds %v %v %v", tags["SOPClassUID"], tags["Modality"], tags["PatientID"])
	}
}

func TestHandlerServesExports(t *testing.T) {
	store, err := durable.Open(filepath.Join(t.TempDir(), "box.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	bus := telemetry.NewBus(nil)
	rec, err := New(Config{Store: store, Bus: bus, FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	sent := ambulanceRun(bus, 1)
	// Wait until the recorder holds everything, then rely on the handler's flush.
	wait.For(t, 10*time.Second, "the recorder to hold every event", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.pending) == len(sent)
	})
	srv := httptest.NewServer(http.StripPrefix("/api/v1/record", Handler(store, func() ECGOptions { return ECGOptions{PatientID: "P1"} }, rec.Flush)))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/record/ecg.dcm")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/dicom" || string(body[128:132]) != "DICM" {
		t.Fatalf("ecg.dcm: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body))
	}
	resp, err = http.Get(srv.URL + "/api/v1/record/oru.hl7")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var d hl7.Deframer
	msgs, skipped, _ := d.Feed(body)
	if len(msgs) == 0 || skipped != 0 {
		t.Fatalf("oru.hl7: %d messages, %d stray bytes", len(msgs), skipped)
	}
	cancel()
	<-done
}
