// Package modem reads the box's 5G module (Quectel RM500Q, RM520N and alike) over its
// AT port: SIM state, registration, operator, access technology and the serving
// cell's RSRP, RSRQ and SINR, polled with read-only commands so the data connection
// is never disturbed, into a LinkQuality. It also has the module simulator
// (Simulator). It runs on the box.
package modem

import (
	"fmt"
	"time"
)

// Technology is the radio access technology of the serving cell.
type Technology string

// Technologies as AT+QENG names them.
const (
	NR5GSA  Technology = "NR5G-SA"
	NR5GNSA Technology = "NR5G-NSA" // LTE anchor with an NR leg (EN-DC)
	LTE     Technology = "LTE"
	WCDMA   Technology = "WCDMA"
	NoRadio Technology = "" // no service
)

// LinkQuality is the state of the mobile link at one poll. RSRP, RSRQ and SINR are
// of the NR leg on NR5G-SA and NR5G-NSA, of LTE otherwise; Has says which are known.
type LinkQuality struct {
	Time       time.Time  `json:"time"`
	Technology Technology `json:"technology"`
	Operator   string     `json:"operator,omitempty"` // name, or MCC+MNC when the module gives numbers
	Registered bool       `json:"registered"`
	Roaming    bool       `json:"roaming,omitempty"`
	SIMReady   bool       `json:"sim_ready"`
	SIMState   string     `json:"sim_state,omitempty"` // READY, SIM PIN, NOT INSERTED, …
	RSRP       float64    `json:"rsrp_dbm,omitempty"`
	RSRQ       float64    `json:"rsrq_db,omitempty"`
	SINR       float64    `json:"sinr_db,omitempty"`
	HasRSRP    bool       `json:"has_rsrp"`
	HasRSRQ    bool       `json:"has_rsrq"`
	HasSINR    bool       `json:"has_sinr"`
	// RSSI is from AT+CSQ, the fallback when AT+QENG gives no measurement.
	RSSI    float64 `json:"rssi_dbm,omitempty"`
	HasRSSI bool    `json:"has_rssi"`
	// LTERSRP is the LTE anchor's RSRP on NR5G-NSA.
	LTERSRP    float64 `json:"lte_rsrp_dbm,omitempty"`
	HasLTERSRP bool    `json:"has_lte_rsrp"`
	Bars       int     `json:"bars"` // 0–5, as a phone shows
}

// bars maps the measurement to 0–5. RSRP thresholds are the common handset ones
// (-85/-95/-105/-115/-125 dBm; 3GPP reports RSRP down to -156 dBm); the AT+CSQ RSSI
// fallback uses -65/-75/-85/-95/-105 dBm. No registration is 0 bars whatever the
// signal.
func (q LinkQuality) bars() int {
	if !q.Registered {
		return 0
	}
	steps := func(v float64, th [5]float64) int {
		n := 0
		for _, t := range th {
			if v >= t {
				n++
			}
		}
		return n
	}
	switch {
	case q.HasRSRP:
		return steps(q.RSRP, [5]float64{-125, -115, -105, -95, -85})
	case q.HasRSSI:
		return steps(q.RSSI, [5]float64{-105, -95, -85, -75, -65})
	}
	return 0
}

// Signal is the link as JT/T 808's signal-strength item wants it: 0–31 like AT+CSQ,
// derived from bars when only RSRP is known.
func (q LinkQuality) Signal() (byte, bool) {
	if q.HasRSSI {
		v := (q.RSSI + 113) / 2
		return byte(max(0, min(31, v))), true
	}
	if q.HasRSRP || q.Registered {
		return byte(q.Bars * 31 / 5), true
	}
	return 0, false
}

func (q LinkQuality) String() string {
	if !q.SIMReady {
		return fmt.Sprintf("SIM not ready (%s)", q.SIMState)
	}
	if !q.Registered {
		return "not registered (searching)"
	}
	s := fmt.Sprintf("%s on %s, %d bars", q.Technology, q.Operator, q.Bars)
	if q.HasRSRP {
		s += fmt.Sprintf(", RSRP %.0f dBm", q.RSRP)
	}
	if q.HasSINR {
		s += fmt.Sprintf(", SINR %.0f dB", q.SINR)
	}
	return s
}
