package datex

import (
	"encoding/binary"
	"fmt"
)

// Waveform subrecord types (sr_type of a MainWave record, and the entries of a
// waveform request).
const (
	WaveCmd   byte = 0 // DRI_WF_CMD: a request from the box
	WaveECG1  byte = 1
	WaveECG2  byte = 2
	WaveECG3  byte = 3
	WaveINVP1 byte = 4
	WaveINVP2 byte = 5
	WaveINVP3 byte = 6
	WaveINVP4 byte = 7
	WavePleth byte = 8
	WaveCO2   byte = 9
	WaveO2    byte = 10
	WaveN2O   byte = 11
	WaveAA    byte = 12
	WaveAWP   byte = 13
	WaveFlow  byte = 14
	WaveResp  byte = 15 // impedance respiration
	WaveINVP5 byte = 16
	WaveINVP6 byte = 17
)

// WaveInfo describes a waveform type: its sample rate and the physical value of one
// count (the S/5 sends signed 16-bit samples with the fixed resolution of each type).
type WaveInfo struct {
	Name  string
	Rate  float64 // samples per second
	Scale float64 // physical units per count
	Unit  string  // unit of Scale, as the record defines it (not yet the model's)
}

var waveInfo = map[byte]WaveInfo{
	WaveECG1:  {"ECG1", 300, 0.01, "mV"}, // 10 µV per count
	WaveECG2:  {"ECG2", 300, 0.01, "mV"},
	WaveECG3:  {"ECG3", 300, 0.01, "mV"},
	WaveINVP1: {"INVP1", 100, 0.01, "mmHg"},
	WaveINVP2: {"INVP2", 100, 0.01, "mmHg"},
	WaveINVP3: {"INVP3", 100, 0.01, "mmHg"},
	WaveINVP4: {"INVP4", 100, 0.01, "mmHg"},
	WaveINVP5: {"INVP5", 100, 0.01, "mmHg"},
	WaveINVP6: {"INVP6", 100, 0.01, "mmHg"},
	WavePleth: {"PLETH", 100, 0.01, "%"},
	WaveCO2:   {"CO2", 25, 0.01, "%"},
	WaveO2:    {"O2", 25, 0.01, "%"},
	WaveN2O:   {"N2O", 25, 0.01, "%"},
	WaveAA:    {"AA", 25, 0.01, "%"},
	WaveAWP:   {"AWP", 25, 0.1, "cmH2O"},
	WaveFlow:  {"FLOW", 25, 0.01, "l/min"},
	WaveResp:  {"RESP", 25, 0.01, "Ohm"},
}

// LookupWave returns what the package knows about a waveform type.
func LookupWave(t byte) (WaveInfo, bool) {
	w, ok := waveInfo[t]
	return w, ok
}

// MaxWaves is how many waveforms one request may ask for.
const MaxWaves = 8

// waveHeaderLen is act_len, status and a reserved word.
const waveHeaderLen = 6

// WaveSubrecord is one waveform subrecord: its samples in counts.
type WaveSubrecord struct {
	Type    byte
	Status  uint16
	Samples []int16
}

// ParseWave decodes a waveform subrecord of the given type.
func ParseWave(typ byte, b []byte) (WaveSubrecord, error) {
	w := WaveSubrecord{Type: typ}
	if len(b) < waveHeaderLen {
		return w, fmt.Errorf("datex: waveform subrecord type %d of %d bytes is shorter than its header", typ, len(b))
	}
	n := int(int16(binary.LittleEndian.Uint16(b)))
	w.Status = binary.LittleEndian.Uint16(b[2:])
	if n < 0 || waveHeaderLen+2*n > len(b) {
		return w, fmt.Errorf("datex: waveform subrecord type %d claims %d samples in %d bytes", typ, n, len(b))
	}
	w.Samples = make([]int16, n)
	for i := range w.Samples {
		w.Samples[i] = int16(binary.LittleEndian.Uint16(b[waveHeaderLen+2*i:]))
	}
	return w, nil
}

// Marshal encodes the subrecord data.
func (w *WaveSubrecord) Marshal() []byte {
	b := make([]byte, waveHeaderLen+2*len(w.Samples))
	binary.LittleEndian.PutUint16(b, uint16(len(w.Samples)))
	binary.LittleEndian.PutUint16(b[2:], w.Status)
	for i, s := range w.Samples {
		binary.LittleEndian.PutUint16(b[waveHeaderLen+2*i:], uint16(s))
	}
	return b
}
