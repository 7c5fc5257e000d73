package vitals

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"lifeline/telemetry"
)

// The examples in stream/VITALS.md are made here, from the same code and generators
// the box runs, so the document cannot drift from the format:
//
//	go test ./stream/vitals -run TestVitalsDocument -update-doc
var updateDoc = flag.Bool("update-doc", false, "rewrite the generated examples in stream/VITALS.md")

const vitalsDoc = "../VITALS.md"

// docExamples returns every generated block of the document by name.
func docExamples(t *testing.T) map[string]string {
	epoch := "9f2c4e1a7b3d5e60"
	at := time.Date(2026, 12, 2, 4, 30, 1, 0, time.UTC)
	mk := func(ev telemetry.Event, seq uint64) []byte {
		m := FromEvent("amb-07", telemetry.Message{Source: "monitor0", Event: ev})[0]
		m.Seq, m.Epoch = seq, epoch
		data, err := Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	p := newPatient(at)
	var pleth *telemetry.Wave
	for range 7 { // into a beat's upstroke
		for _, ev := range p.next() {
			if w, ok := ev.(*telemetry.Wave); ok && w.Code == telemetry.MDC_PULS_OXIM_PLETH {
				pleth = w
			}
		}
	}
	afterGap := *pleth
	afterGap.Start, afterGap.MonitorStart, afterGap.ReceiveTime = at.Add(31*time.Second), at.Add(31*time.Second), at.Add(31100*time.Millisecond)
	afterGap.Gap = true
	nibp := telemetry.NIBP{Sys: 124, Dia: 78, Mean: 93, Measured: at.Add(-28 * time.Second), MonitorTime: at.Add(-20 * time.Millisecond), ReceiveTime: at}

	ex := map[string][]byte{
		"numeric": mk(&telemetry.Numeric{Code: telemetry.MDC_PULS_OXIM_SAT_O2, Value: 97, Unit: telemetry.UnitPercent,
			MonitorTime: at.Add(-20 * time.Millisecond), ReceiveTime: at}, 17),
		"numeric-nibp": mk(nibp.Numerics()[0], 18),
		"numeric-channel": mk(&telemetry.Numeric{Code: telemetry.MDC_TEMP, Value: 36.8, Unit: telemetry.UnitCelsius,
			Channel: telemetry.Channel{ID: "1.26.1.2", Label: "T2"}, MonitorTime: at.Add(-20 * time.Millisecond), ReceiveTime: at}, 27),
		"numeric-novalue": mk(&telemetry.Numeric{Code: telemetry.MDC_AWAY_CO2_ET, Value: nanValue(), Unit: telemetry.UnitMMHg, ReceiveTime: at, Invalid: true}, 19),
		"wave":            mk(pleth, 5012),
		"wave-gap":        mk(&afterGap, 5420),
		"alarm": mk(&telemetry.Alarm{Priority: telemetry.PriorityHigh, Text: "VTACH", Code: telemetry.MDC_ECG_HEART_RATE, On: true,
			MonitorTime: at.Add(-20 * time.Millisecond), ReceiveTime: at}, 20),
		"device": mk(&telemetry.DeviceEvent{State: telemetry.DeviceSensorOff, Code: telemetry.MDC_PULS_OXIM_SAT_O2, Detail: "SpO2 probe off", ReceiveTime: at}, 21),
	}
	receipt := Message{V: Version, Type: TypeReceipt, Seq: 22, Epoch: epoch, Device: "amb-07", Ref: 3, State: "read", BoxTime: at.Add(4 * time.Second)}
	ack := Message{V: Version, Type: TypeAck, Seq: 22, Epoch: epoch}
	replay := Message{V: Version, Type: TypeAck, Seq: 19, Epoch: epoch, Replay: true}
	text := Message{V: Version, Type: TypeText, Seq: 3, ID: "m-0003", From: "Dr Li (ED)", Text: "Give aspirin 300 mg; STEMI team alerted.", HubTime: at.Add(2 * time.Second)}
	card := Message{V: Version, Type: TypePatient, Seq: 23, Epoch: epoch, Device: "amb-07", BoxTime: at.Add(5 * time.Second),
		Card: &PatientCard{AgeBand: "60-69", Sex: "male", Complaint: "crushing chest pain for 40 min", Suspected: []string{"stemi"},
			Triage: 1, Updated: at.Add(5 * time.Second)}}
	stroke := Message{V: Version, Type: TypePatient, Seq: 24, Epoch: epoch, Device: "amb-07", BoxTime: at.Add(6 * time.Second),
		Card: &PatientCard{AgeBand: "70-79", Sex: "female", Complaint: "left arm weakness, slurred speech", Suspected: []string{"stroke"},
			LastKnownWell: at.Add(-52 * time.Minute), Triage: 2, Updated: at.Add(6 * time.Second)}}
	ecgReq := Message{V: Version, Type: TypeECGRequest, Seq: 4, ID: "m-4", From: "Dr Li (ED)", HubTime: at.Add(7 * time.Second)}
	acquiring := Message{V: Version, Type: TypeECG, Seq: 25, Epoch: epoch, Device: "amb-07", Ref: 4, State: ECGAcquiring, BoxTime: at.Add(7200 * time.Millisecond)}
	queued := Message{V: Version, Type: TypeECG, Seq: 26, Epoch: epoch, Device: "amb-07", Ref: 4, State: ECGQueued,
		SOP: "2.25.131977712345678901234567890123456789", Study: "2.25.274389012345678901234567890123456789", BoxTime: at.Add(17400 * time.Millisecond)}
	for name, m := range map[string]*Message{"receipt": &receipt, "ack": &ack, "ack-replay": &replay, "control": &text,
		"patient": &card, "patient-stroke": &stroke, "ecg-request": &ecgReq, "ecg-acquiring": &acquiring, "ecg-queued": &queued} {
		data, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		ex[name] = data
	}
	out := map[string]string{}
	for name, data := range ex {
		var buf bytes.Buffer
		if err := json.Indent(&buf, data, "", "  "); err != nil {
			t.Fatal(err)
		}
		out[name] = "```json\n" + buf.String() + "\n```\n"
	}
	out["history"] = historyExample(t, ex["numeric"], ex["alarm"])
	out["sizes"] = sizesExample(t)
	return out
}

func nanValue() float64 {
	var zero float64
	return zero / zero
}

// historyExample is what the hub's history handler serves after receiving msgs.
func historyExample(t *testing.T, msgs ...[]byte) string {
	a, _ := newArchive(t, NewBoltHistory(openStore(t, "hub.db"), HistoryBounds{}), 0)
	for _, m := range msgs {
		mustReceive(t, a, LabelReliable, m, true)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	_, code, body := getPage(t, historyServer(t, a), "?since=0")
	if code != 200 {
		t.Fatalf("history: %d %s", code, body)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(strings.TrimSpace(body)), "", "  "); err != nil {
		t.Fatal(err)
	}
	return "```json\n" + buf.String() + "\n```\n"
}

// sizesExample measures a monitored patient's messages, for the ring's sizing.
func sizesExample(t *testing.T) string {
	p := newPatient(t0)
	var seq, waveSeq uint64
	var numBytes, numN, numMax, waveBytes, waveN, waveMax int
	const seconds = 10
	for range seconds * 10 {
		for _, data := range encodeAll(t, p.next(), &seq, &waveSeq) {
			if bytes.HasPrefix(data, []byte(`{"v":1,"type":"wave"`)) {
				waveBytes, waveN, waveMax = waveBytes+len(data), waveN+1, max(waveMax, len(data))
			} else {
				numBytes, numN, numMax = numBytes+len(data), numN+1, max(numMax, len(data))
			}
		}
	}
	avg := numBytes / numN
	const perSecond = 40 // a 12-lead monitor reporting ST per lead, SpO2, NIBP, EtCO2, temperatures…
	ringMinutes := min(float64(1<<17)/perSecond, float64(64<<20)/float64(perSecond*avg)) / 60
	var b strings.Builder
	fmt.Fprintf(&b, "```text\n")
	fmt.Fprintf(&b, "reliable messages (numerics, alarms) of the test patient: mean %d bytes, largest %d\n", avg, numMax)
	fmt.Fprintf(&b, "wave chunks (100 ms each; 12 of 14 are 50 samples of an ECG lead): mean %d bytes, largest %d\n", waveBytes/waveN, waveMax)
	fmt.Fprintf(&b, "12 leads at 500 Hz + pleth + respiration: %d bytes/s on vitals-wave at generator precision\n", waveBytes/seconds)
	fmt.Fprintf(&b, "box ring, defaults 131072 messages / 64 MiB, at %d reliable messages/s: %.0f minutes\n", perSecond, ringMinutes)
	fmt.Fprintf(&b, "```\n")
	return b.String()
}

var docBlock = regexp.MustCompile("(?s)<!-- example:([a-z-]+) -->\n(```.*?\n```\n)")

func TestVitalsDocumentShowsTheCurrentFormat(t *testing.T) {
	doc, err := os.ReadFile(vitalsDoc)
	if err != nil {
		t.Fatal(err)
	}
	want := docExamples(t)
	found := map[string]bool{}
	updated := docBlock.ReplaceAllStringFunc(string(doc), func(block string) string {
		name := docBlock.FindStringSubmatch(block)[1]
		found[name] = true
		gen, ok := want[name]
		if !ok {
			t.Errorf("VITALS.md has an example %q the test does not make", name)
			return block
		}
		return "<!-- example:" + name + " -->\n" + gen
	})
	for name := range want {
		if !found[name] {
			t.Errorf("VITALS.md lacks the example %q", name)
		}
	}
	if updated == string(doc) {
		return
	}
	if *updateDoc {
		if err := os.WriteFile(vitalsDoc, []byte(updated), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("the examples in stream/VITALS.md are out of date: run go test ./stream/vitals -run TestVitalsDocument -update-doc")
}
