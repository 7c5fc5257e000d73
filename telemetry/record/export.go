package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	lifelinedicom "lifeline/dicom"
	"math"
	"strconv"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
)

// ExportHL7 writes the record as HL7 v2 messages (unframed): ORU^R01 messages in the
// PCD-01 layout with up to 64 numerics or 64 wave blocks each, and ORU^R40 messages for
// the alarms, in record order. hl7.Parse and hl7.Decode read them back to the same codes,
// units, values and samples.
func ExportHL7(msgs []telemetry.Message, facility string, now time.Time) [][]byte {
	var out [][]byte
	ctl := 0
	hdr := func() hl7.Header {
		ctl++
		return hl7.Header{SendingApp: "LIFELINE^RECORD", Facility: facility, ControlID: "REC" + strconv.Itoa(ctl), Time: now, AckType: "NE"}
	}
	var nums []*telemetry.Numeric
	var waves []*telemetry.Wave
	var alarms []*telemetry.Alarm
	flush := func() {
		if len(nums) > 0 || len(waves) > 0 {
			out = append(out, hl7.EncodeORU(hdr(), nums, waves))
		}
		if len(alarms) > 0 {
			out = append(out, hl7.EncodeAlarms(hdr(), alarms))
		}
		nums, waves, alarms = nil, nil, nil
	}
	for _, m := range msgs {
		switch v := m.Event.(type) {
		case *telemetry.Numeric:
			nums = append(nums, v)
		case *telemetry.Wave:
			waves = append(waves, v)
		case *telemetry.Alarm:
			alarms = append(alarms, v)
		}
		if len(nums) >= 64 || len(waves) >= 64 || len(alarms) >= 64 {
			flush()
		}
	}
	flush()
	return out
}

// GeneralECGSOPClass is the DICOM General ECG Waveform Storage SOP class.
const GeneralECGSOPClass = "1.2.840.10008.5.1.4.1.1.9.1.2"

// ECGOptions describes the DICOM export.
type ECGOptions struct {
	PatientName, PatientID, PatientSex, PatientBirthDate string
	Institution                                          string
	// StudyInstanceUID joins an existing study (the ambulance run); empty: a new one.
	StudyInstanceUID string
	// From/To limit the exported span on the steady time axis; zero: the whole record.
	// The General ECG IOD holds one multiplex group, so the span is where all exported
	// leads have samples.
	From, To time.Time
}

// scpLead maps our leads to the SCP-ECG lead codes DICOM uses (CID 3001).
var scpLead = map[telemetry.Code]struct{ code, meaning string }{
	telemetry.MDC_ECG_ELEC_POTL_I:   {"5.6.3-9-1", "Lead I"},
	telemetry.MDC_ECG_ELEC_POTL_II:  {"5.6.3-9-2", "Lead II"},
	telemetry.MDC_ECG_ELEC_POTL_V1:  {"5.6.3-9-3", "Lead V1"},
	telemetry.MDC_ECG_ELEC_POTL_V2:  {"5.6.3-9-4", "Lead V2"},
	telemetry.MDC_ECG_ELEC_POTL_V3:  {"5.6.3-9-5", "Lead V3"},
	telemetry.MDC_ECG_ELEC_POTL_V4:  {"5.6.3-9-6", "Lead V4"},
	telemetry.MDC_ECG_ELEC_POTL_V5:  {"5.6.3-9-7", "Lead V5"},
	telemetry.MDC_ECG_ELEC_POTL_V6:  {"5.6.3-9-8", "Lead V6"},
	telemetry.MDC_ECG_ELEC_POTL_III: {"5.6.3-9-61", "Lead III"},
	telemetry.MDC_ECG_ELEC_POTL_AVR: {"5.6.3-9-62", "Lead aVR"},
	telemetry.MDC_ECG_ELEC_POTL_AVL: {"5.6.3-9-63", "Lead aVL"},
	telemetry.MDC_ECG_ELEC_POTL_AVF: {"5.6.3-9-64", "Lead aVF"},
}

// ECGSeries is the ECG laid out for export: one sample axis shared by all leads.
type ECGSeries struct {
	Leads   []telemetry.Code
	Rate    float64
	Start   time.Time
	Samples [][]float32 // per lead, in mV
	Missing int         // samples no block covered (lost on the line), written as 0
}

// LayOut places the recorded ECG blocks of every lead present on one time axis.
func LayOut(msgs []telemetry.Message, from, to time.Time) (ECGSeries, error) {
	var s ECGSeries
	var blocks [][]*telemetry.Wave
	for _, c := range telemetry.ECG12 {
		ws := Waves(msgs, c)
		if len(ws) == 0 {
			continue
		}
		if s.Rate == 0 {
			s.Rate = ws[0].Rate
		}
		var keep []*telemetry.Wave
		for _, w := range ws {
			if w.Rate == s.Rate {
				keep = append(keep, w)
			}
		}
		s.Leads = append(s.Leads, c)
		blocks = append(blocks, keep)
	}
	if len(s.Leads) == 0 {
		return s, errors.New("record: no ECG in the record")
	}
	// The common span: latest first sample to earliest last sample.
	var start, end time.Time
	for i, ws := range blocks {
		b, e := ws[0].Start, ws[len(ws)-1].End()
		if i == 0 || b.After(start) {
			start = b
		}
		if i == 0 || e.Before(end) {
			end = e
		}
	}
	if !from.IsZero() && from.After(start) {
		start = from
	}
	if !to.IsZero() && to.Before(end) {
		end = to
	}
	n := int(math.Floor(end.Sub(start).Seconds()*s.Rate + 1e-6))
	if n <= 0 {
		return s, errors.New("record: the leads have no common time span")
	}
	s.Start = start
	for _, ws := range blocks {
		out := make([]float32, n)
		filled := make([]bool, n)
		for _, w := range ws {
			off := int(math.Round(w.Start.Sub(start).Seconds() * s.Rate))
			for k, v := range w.Samples {
				if i := off + k; i >= 0 && i < n {
					out[i], filled[i] = v, true
				}
			}
		}
		for _, f := range filled {
			if !f {
				s.Missing++
			}
		}
		s.Samples = append(s.Samples, out)
	}
	return s, nil
}

// newUID returns a UID under the 2.25 root.
func newUID() string { return lifelinedicom.NewUID() }

func el(t tag.Tag, v any) *dicom.Element {
	e, err := dicom.NewElement(t, v)
	if err != nil {
		panic(fmt.Sprintf("record: element %v: %v", t, err)) // a programming error in this file
	}
	return e
}

// ExportECG writes the record's ECG as a DICOM Part 10 General ECG Waveform object
// (explicit VR little endian), one multiplex group with every recorded lead, samples as
// 16-bit integers in µV.
func ExportECG(msgs []telemetry.Message, opt ECGOptions, now time.Time) ([]byte, ECGSeries, error) {
	s, err := LayOut(msgs, opt.From, opt.To)
	if err != nil {
		return nil, s, err
	}
	study := opt.StudyInstanceUID
	if study == "" {
		study = newUID()
	}
	sop := newUID()
	n := len(s.Samples[0])
	data := make([]byte, 2*n*len(s.Leads))
	for i := 0; i < n; i++ {
		for c := range s.Leads {
			uv := math.Round(float64(s.Samples[c][i]) * 1000)
			uv = math.Max(math.MinInt16, math.Min(math.MaxInt16, uv))
			binary.LittleEndian.PutUint16(data[2*(i*len(s.Leads)+c):], uint16(int16(uv)))
		}
	}
	var channels [][]*dicom.Element
	for i, c := range s.Leads {
		lead := scpLead[c]
		channels = append(channels, []*dicom.Element{
			el(tag.WaveformChannelNumber, []string{strconv.Itoa(i + 1)}),
			el(tag.ChannelLabel, []string{lead.meaning}),
			el(tag.ChannelSourceSequence, [][]*dicom.Element{{
				el(tag.CodeValue, []string{lead.code}),
				el(tag.CodingSchemeDesignator, []string{"SCPECG"}),
				el(tag.CodingSchemeVersion, []string{"1.3"}),
				el(tag.CodeMeaning, []string{lead.meaning}),
			}}),
			el(tag.ChannelSensitivity, []string{"1"}),
			el(tag.ChannelSensitivityUnitsSequence, [][]*dicom.Element{{
				el(tag.CodeValue, []string{"uV"}),
				el(tag.CodingSchemeDesignator, []string{"UCUM"}),
				el(tag.CodingSchemeVersion, []string{"1.4"}),
				el(tag.CodeMeaning, []string{"microvolt"}),
			}}),
			el(tag.ChannelSensitivityCorrectionFactor, []string{"1"}),
			el(tag.ChannelBaseline, []string{"0"}),
			el(tag.ChannelSampleSkew, []string{"0"}),
			el(tag.WaveformBitsStored, []int{16}),
		})
	}
	wdata := el(tag.WaveformData, data)
	wdata.RawValueRepresentation = "OW"
	wdata.ValueRepresentation = tag.GetVRKind(tag.WaveformData, "OW")
	group := []*dicom.Element{
		el(tag.MultiplexGroupTimeOffset, []string{"0"}),
		el(tag.WaveformOriginality, []string{"ORIGINAL"}),
		el(tag.NumberOfWaveformChannels, []int{len(s.Leads)}),
		el(tag.NumberOfWaveformSamples, []int{n}),
		el(tag.SamplingFrequency, []string{strconv.FormatFloat(s.Rate, 'f', -1, 64)}),
		el(tag.MultiplexGroupLabel, []string{"ECG"}),
		el(tag.ChannelDefinitionSequence, channels),
		el(tag.WaveformBitsAllocated, []int{16}),
		el(tag.WaveformSampleInterpretation, []string{"SS"}),
		wdata,
	}
	start := s.Start.UTC()
	ds := dicom.Dataset{Elements: []*dicom.Element{
		el(tag.MediaStorageSOPClassUID, []string{GeneralECGSOPClass}),
		el(tag.MediaStorageSOPInstanceUID, []string{sop}),
		el(tag.TransferSyntaxUID, []string{"1.2.840.10008.1.2.1"}),
		el(tag.ImplementationClassUID, []string{"2.25.286208972843543938436419474591224389210"}),
		el(tag.ImplementationVersionName, []string{"LIFELINE"}),
		el(tag.SpecificCharacterSet, []string{"ISO_IR 192"}),
		el(tag.InstanceCreationDate, []string{now.UTC().Format("20060102")}),
		el(tag.InstanceCreationTime, []string{now.UTC().Format("150405")}),
		el(tag.SOPClassUID, []string{GeneralECGSOPClass}),
		el(tag.SOPInstanceUID, []string{sop}),
		el(tag.StudyDate, []string{start.Format("20060102")}),
		el(tag.ContentDate, []string{start.Format("20060102")}),
		el(tag.AcquisitionDateTime, []string{start.Format("20060102150405.000000") + "+0000"}),
		el(tag.StudyTime, []string{start.Format("150405")}),
		el(tag.ContentTime, []string{start.Format("150405.000000")}),
		el(tag.AccessionNumber, []string{""}),
		el(tag.Modality, []string{"ECG"}),
		el(tag.Manufacturer, []string{"Lifeline"}),
		el(tag.InstitutionName, []string{opt.Institution}),
		el(tag.ReferringPhysicianName, []string{""}),
		el(tag.SeriesDescription, []string{"Pre-hospital ECG"}),
		el(tag.PatientName, []string{opt.PatientName}),
		el(tag.PatientID, []string{opt.PatientID}),
		el(tag.PatientBirthDate, []string{opt.PatientBirthDate}),
		el(tag.PatientSex, []string{opt.PatientSex}),
		el(tag.StudyInstanceUID, []string{study}),
		el(tag.SeriesInstanceUID, []string{newUID()}),
		el(tag.StudyID, []string{"1"}),
		el(tag.SeriesNumber, []string{"1"}),
		el(tag.InstanceNumber, []string{"1"}),
		el(tag.AcquisitionContextSequence, [][]*dicom.Element{}),
		el(tag.WaveformSequence, [][]*dicom.Element{group}),
	}}
	var buf bytes.Buffer
	if err := dicom.Write(&buf, ds); err != nil {
		return nil, s, fmt.Errorf("record: write DICOM ECG: %w", err)
	}
	return buf.Bytes(), s, nil
}
