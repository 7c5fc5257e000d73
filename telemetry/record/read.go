package record

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ECGDocument is a 12-lead ECG as the hub shows and prints it: the leads by their
// labels, in mV, on one sample axis.
type ECGDocument struct {
	SOPInstanceUID   string      `json:"sop"`
	StudyInstanceUID string      `json:"study"`
	PatientID        string      `json:"patient_id,omitempty"`
	Institution      string      `json:"institution,omitempty"`
	Acquired         string      `json:"acquired,omitempty"` // AcquisitionDateTime as stored (DT)
	Rate             float64     `json:"rate"`               // samples per second
	Labels           []string    `json:"labels"`             // "Lead I", "Lead II", …
	Samples          [][]float32 `json:"samples"`            // per lead, mV
}

// MaxECGFile bounds what ReadECG parses: a 10 s 12-lead ECG at 1000 Hz is 240 KB of
// samples, a long rhythm strip a few MB.
const MaxECGFile = 16 << 20

// ReadECG reads a DICOM General or 12-lead ECG waveform object (Part 10) such as
// ExportECG writes and real electrocardiographs send: the first multiplex group, 16-bit
// signed samples scaled by each channel's sensitivity and correction factor to mV
// (sensitivity in uV, mV or V by its units code).
func ReadECG(file []byte) (ECGDocument, error) {
	var doc ECGDocument
	if len(file) > MaxECGFile {
		return doc, fmt.Errorf("ecg: file of %d bytes, more than %d", len(file), MaxECGFile)
	}
	ds, err := dicom.Parse(bytes.NewReader(file), int64(len(file)), nil)
	if err != nil {
		return doc, fmt.Errorf("ecg: %w", err)
	}
	doc.SOPInstanceUID = text(ds, tag.SOPInstanceUID)
	doc.StudyInstanceUID = text(ds, tag.StudyInstanceUID)
	doc.PatientID = text(ds, tag.PatientID)
	doc.Institution = text(ds, tag.InstitutionName)
	doc.Acquired = text(ds, tag.AcquisitionDateTime)
	seq, err := ds.FindElementByTag(tag.WaveformSequence)
	if err != nil {
		return doc, errors.New("ecg: no waveform sequence")
	}
	groups, ok := seq.Value.GetValue().([]*dicom.SequenceItemValue)
	if !ok || len(groups) == 0 {
		return doc, errors.New("ecg: empty waveform sequence")
	}
	g := groupOf(groups[0])
	if g.interp != "SS" || g.bits != 16 {
		return doc, fmt.Errorf("ecg: samples are %q of %d bits; only 16-bit signed (SS) is read", g.interp, g.bits)
	}
	if g.channels == 0 || g.channels > 64 || g.samples <= 0 || len(g.defs) != g.channels {
		return doc, fmt.Errorf("ecg: %d channels (%d defined) of %d samples", g.channels, len(g.defs), g.samples)
	}
	if len(g.data) < 2*g.channels*g.samples {
		return doc, fmt.Errorf("ecg: waveform data is %d bytes, %d channels × %d samples need %d", len(g.data), g.channels, g.samples, 2*g.channels*g.samples)
	}
	if !(g.rate > 0 && g.rate <= 20000) {
		return doc, fmt.Errorf("ecg: sampling frequency %g", g.rate)
	}
	doc.Rate = g.rate
	for c, def := range g.defs {
		doc.Labels = append(doc.Labels, def.label)
		out := make([]float32, g.samples)
		for i := range out {
			o := 2 * (i*g.channels + c)
			v := float64(int16(uint16(g.data[o]) | uint16(g.data[o+1])<<8))
			out[i] = float32((v + def.baseline) * def.toMV)
		}
		doc.Samples = append(doc.Samples, out)
	}
	return doc, nil
}

// waveGroup is one multiplex group as read.
type waveGroup struct {
	channels, samples, bits int
	rate                    float64
	interp                  string
	data                    []byte
	defs                    []channelDef
}

type channelDef struct {
	label    string
	toMV     float64 // sensitivity × correction, in mV per stored unit
	baseline float64
}

func groupOf(item *dicom.SequenceItemValue) waveGroup {
	var g waveGroup
	els, _ := item.GetValue().([]*dicom.Element)
	for _, e := range els {
		switch e.Tag {
		case tag.NumberOfWaveformChannels:
			g.channels = firstInt(e)
		case tag.NumberOfWaveformSamples:
			g.samples = firstInt(e)
		case tag.WaveformBitsAllocated:
			g.bits = firstInt(e)
		case tag.SamplingFrequency:
			g.rate = firstFloat(e)
		case tag.WaveformSampleInterpretation:
			g.interp = firstString(e)
		case tag.WaveformData:
			g.data, _ = e.Value.GetValue().([]byte)
		case tag.ChannelDefinitionSequence:
			items, _ := e.Value.GetValue().([]*dicom.SequenceItemValue)
			for _, it := range items {
				g.defs = append(g.defs, channelOf(it))
			}
		}
	}
	return g
}

func channelOf(item *dicom.SequenceItemValue) channelDef {
	d := channelDef{toMV: 0.001} // no sensitivity: take the samples as µV
	sens, corr, unit := 0.0, 1.0, "uV"
	els, _ := item.GetValue().([]*dicom.Element)
	for _, e := range els {
		switch e.Tag {
		case tag.ChannelLabel:
			d.label = firstString(e)
		case tag.ChannelSourceSequence:
			if d.label == "" {
				d.label = codeMeaning(e)
			}
		case tag.ChannelSensitivity:
			sens = firstFloat(e)
		case tag.ChannelSensitivityCorrectionFactor:
			if f := firstFloat(e); f != 0 {
				corr = f
			}
		case tag.ChannelBaseline:
			d.baseline = firstFloat(e)
		case tag.ChannelSensitivityUnitsSequence:
			unit = codeValue(e)
		}
	}
	if sens != 0 {
		scale := map[string]float64{"uV": 0.001, "mV": 1, "V": 1000}[unit]
		if scale == 0 {
			scale = 0.001
		}
		d.toMV = sens * corr * scale
	}
	return d
}

func text(ds dicom.Dataset, t tag.Tag) string {
	e, err := ds.FindElementByTag(t)
	if err != nil {
		return ""
	}
	return firstString(e)
}

func firstString(e *dicom.Element) string {
	if v, ok := e.Value.GetValue().([]string); ok && len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

func firstInt(e *dicom.Element) int {
	if v, ok := e.Value.GetValue().([]int); ok && len(v) > 0 {
		return v[0]
	}
	n, _ := strconv.Atoi(firstString(e))
	return n
}

func firstFloat(e *dicom.Element) float64 {
	if v, ok := e.Value.GetValue().([]float64); ok && len(v) > 0 {
		return v[0]
	}
	f, _ := strconv.ParseFloat(firstString(e), 64)
	return f
}

// codeValue and codeMeaning read the first item of a code sequence.
func codeValue(e *dicom.Element) string   { return codeField(e, tag.CodeValue) }
func codeMeaning(e *dicom.Element) string { return codeField(e, tag.CodeMeaning) }

func codeField(e *dicom.Element, t tag.Tag) string {
	items, _ := e.Value.GetValue().([]*dicom.SequenceItemValue)
	if len(items) == 0 {
		return ""
	}
	els, _ := items[0].GetValue().([]*dicom.Element)
	for _, x := range els {
		if x.Tag == t {
			return firstString(x)
		}
	}
	return ""
}
