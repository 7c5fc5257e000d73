package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/phantom"
	"lifeline/dicom/send"
	"lifeline/internal/service"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/physio"
)

// The demo's simulated devices speak to the box exactly as real ones would: a patient
// monitor sending HL7 over MLLP to the box's listening port, and a CT modality pushing
// studies by C-STORE. Nothing is injected behind the box's back.

// demoStudyEvery is how often the simulated modality pushes a new study.
const demoStudyEvery = 2 * time.Minute

// runDemoMonitor plays a patient monitor (HL7/MLLP, sinus rhythm with a VT episode and
// a desaturation, NIBP every minute) connecting to the box at addr, reconnecting as a
// real monitor would.
func runDemoMonitor(ctx context.Context, addr string, log *slog.Logger) {
	for ctx.Err() == nil {
		conn, err := hl7.Dial(ctx, addr)
		if err != nil {
			service.Sleep(ctx, time.Second)
			continue
		}
		sim := hl7.NewSimulator(hl7.SimConfig{Scenario: &physio.Scenario{
			HR: 84, VTAt: 90 * time.Second, VTFor: 20 * time.Second, NIBPEvery: time.Minute,
			DesatAt: 45 * time.Second, DesatOver: 30 * time.Second, DesatTo: 88,
		}, Leads: telemetry.ECG12, ECGRate: 500}) // twelve leads, so the ED's 12-lead request works
		if err := sim.Run(ctx, hl7.ConnPort(conn)); err != nil && ctx.Err() == nil {
			log.Warn("demo monitor disconnected; reconnecting", "err", err)
		}
		conn.Close()
	}
}

// runDemoModality pushes a small synthetic CT study to the box's SCP now and every
// demoStudyEvery, through the same C-STORE path a clinic's CT uses.
func runDemoModality(ctx context.Context, dir, scpAddr, calledAE string, log *slog.Logger) {
	for n := 1; ctx.Err() == nil; n++ {
		instances, err := writeDemoStudy(filepath.Join(dir, fmt.Sprintf("study-%d", n)), n)
		if err == nil {
			err = send.Send(ctx, instances, send.Options{Addr: scpAddr, CallingAE: "DEMO_CT", CalledAE: calledAE, Log: log}, func(send.Outcome) {})
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("demo modality could not send its study", "err", err)
		}
		service.Sleep(ctx, demoStudyEvery)
	}
}

// writeDemoStudy writes study n: 24 CT slices of 256×256 16-bit pixels.
func writeDemoStudy(dir string, n int) ([]send.Instance, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	root := fmt.Sprintf("2.25.%d%d", time.Now().Unix(), n)
	study := root + ".1"
	var out []send.Instance
	for i := 0; i < 24; i++ {
		spec := phantom.Spec{
			SOPInstanceUID: phantom.UID(study+".1", i), StudyUID: study, SeriesUID: study + ".1",
			PatientID: fmt.Sprintf("DEMO%03d", n), PatientName: "Demo^Patient", Modality: "CT",
			Rows: 256, Columns: 256, Fill: byte(i),
		}
		path := filepath.Join(dir, fmt.Sprintf("ct%02d.dcm", i))
		if err := os.WriteFile(path, phantom.File(spec), 0o600); err != nil {
			return nil, err
		}
		f, err := dicom.OpenFile(path)
		if err != nil {
			return nil, err
		}
		out = append(out, send.Instance{File: f, StudyUID: study})
	}
	return out, nil
}
