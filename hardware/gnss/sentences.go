package gnss

import (
	"time"

	nmea "github.com/adrianmo/go-nmea"
)

const knotsToKmh = 1.852

// apply merges one sentence into the open epoch; it returns the previous epoch when
// this sentence started a new one.
func (in *Intake) apply(s nmea.Sentence, now time.Time) *Fix {
	switch v := s.(type) {
	case nmea.RMC:
		done := in.begin(v.Time, now)
		in.applyRMC(v)
		return done
	case nmea.GGA:
		done := in.begin(v.Time, now)
		in.applyGGA(v)
		return done
	case nmea.GNS:
		done := in.begin(v.Time, now)
		in.applyGNS(v)
		return done
	case nmea.ZDA:
		done := in.begin(v.Time, now)
		if v.Year > 0 && v.Month >= 1 && v.Month <= 12 && v.Day >= 1 && v.Day <= 31 {
			in.date = nmea.Date{Valid: true, DD: int(v.Day), MM: int(v.Month), YY: int(v.Year % 100)}
		}
		return done
	case nmea.VTG:
		in.begin(nmea.Time{}, now)
		if !in.rmcSeen {
			in.cur.SpeedKmh = v.GroundSpeedKPH
			in.cur.CourseDeg, in.cur.HasCourse = v.TrueTrack, fieldPresent(v.Raw, 1)
		}
	case nmea.GSA:
		in.begin(nmea.Time{}, now)
		in.applyGSA(v)
	case nmea.GSV:
		in.begin(nmea.Time{}, now)
		// Each message of a GSV cycle repeats the count in view. NMEA 4.11 repeats the
		// cycle per signal (L1, L5: the trailing signal ID, which go-nmea calls
		// SystemID) listing the same satellites, so per talker the largest count wins.
		key := v.TalkerID()
		if v.NumberSVsInView > in.inView[key] {
			in.inView[key] = v.NumberSVsInView
		}
	}
	return nil
}

func (in *Intake) applyRMC(v nmea.RMC) {
	in.positional = true
	in.rmcSeen = true
	if v.Date.Valid {
		in.date = v.Date
	}
	// NMEA 4.1 adds a navigational status, but a Quectel L76K sends "V" in it
	// with every good fix (testdata/quectel-l76k-nmea.log): only the status field
	// decides.
	in.cur.Valid = v.Validity == nmea.ValidRMC
	in.validSet = true
	in.cur.Lat, in.cur.Lon = v.Latitude, v.Longitude
	in.cur.SpeedKmh = v.Speed * knotsToKmh
	in.cur.CourseDeg, in.cur.HasCourse = v.Course, fieldPresent(v.Raw, 8)
}

func (in *Intake) applyGGA(v nmea.GGA) {
	in.positional = true
	q := ggaQuality(v.FixQuality)
	in.cur.Quality = q
	if !in.rmcSeen {
		in.cur.Valid = q != QualityNone
		in.validSet = true
	}
	if q != QualityNone {
		in.cur.Lat, in.cur.Lon = v.Latitude, v.Longitude
		in.cur.AltitudeM, in.cur.HasAlt = v.Altitude, true
	}
	in.cur.Satellites = int(v.NumSatellites)
	in.cur.HDOP = v.HDOP
}

func (in *Intake) applyGNS(v nmea.GNS) {
	in.positional = true
	q := gnsQuality(v.Mode)
	if in.cur.Quality == QualityNone {
		in.cur.Quality = q
	}
	if !in.validSet {
		in.cur.Valid = q != QualityNone
		in.validSet = true
	}
	if q != QualityNone {
		in.cur.Lat, in.cur.Lon = v.Latitude, v.Longitude
		in.cur.AltitudeM, in.cur.HasAlt = v.Altitude, true
	}
	if int(v.SVs) > in.cur.Satellites {
		in.cur.Satellites = int(v.SVs)
	}
	if in.cur.HDOP == 0 {
		in.cur.HDOP = v.HDOP
	}
}

func (in *Intake) applyGSA(v nmea.GSA) {
	sys := systemID(v.SystemID)
	if sys == "" {
		sys = talkerSystem(v.TalkerID())
	}
	for _, prn := range v.SV {
		s := sys
		if s == "" {
			s = legacyPRNSystem(prn)
		}
		set := in.usedPRN[s]
		if set == nil {
			set = map[string]bool{}
			in.usedPRN[s] = set
		}
		set[prn] = true
	}
	in.cur.Mode3D = v.FixType == nmea.Fix3D
	if v.PDOP > 0 {
		in.cur.PDOP = v.PDOP
	}
	if v.HDOP > 0 && in.cur.HDOP == 0 {
		in.cur.HDOP = v.HDOP
	}
	if v.VDOP > 0 {
		in.cur.VDOP = v.VDOP
	}
}

// fieldPresent reports whether comma-separated data field i (0-based, after the
// address) is non-empty: go-nmea gives 0 for an empty course.
func fieldPresent(raw string, i int) bool {
	start := 0
	for n := -1; n < i; n++ {
		j := indexFrom(raw, ',', start)
		if j < 0 {
			return false
		}
		start = j + 1
	}
	end := start
	for end < len(raw) && raw[end] != ',' && raw[end] != '*' {
		end++
	}
	return end > start
}

func indexFrom(s string, c byte, from int) int {
	for i := from; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func ggaQuality(q string) Quality {
	switch q {
	case nmea.GPS:
		return QualityGPS
	case nmea.DGPS:
		return QualityDGPS
	case nmea.PPS:
		return QualityPPS
	case nmea.RTK:
		return QualityRTK
	case nmea.FRTK:
		return QualityFloatRTK
	case nmea.EST:
		return QualityEstimated
	case "7":
		return QualityManual
	case "8":
		return QualitySimulated
	}
	return QualityNone
}

// gnsQuality takes the best of GNS's per-constellation mode letters.
func gnsQuality(modes []string) Quality {
	best := QualityNone
	for _, m := range modes {
		var q Quality
		switch m {
		case nmea.AutonomousGNS:
			q = QualityGPS
		case nmea.DifferentialGNS, nmea.PreciseGNS:
			q = QualityDGPS
		case nmea.RealTimeKinematicGNS:
			q = QualityRTK
		case nmea.FloatRTKGNS:
			q = QualityFloatRTK
		case nmea.EstimatedGNS:
			q = QualityEstimated
		case nmea.ManualGNS:
			q = QualityManual
		case nmea.SimulatorGNS:
			q = QualitySimulated
		}
		if q > best && (best == QualityNone || q < QualityEstimated) {
			best = q
		}
	}
	return best
}

// legacyPRNSystem places a satellite of a GN GSA without a system ID (before NMEA
// 4.10) by its number, in the ranges receivers and gpsd use: 65–96 GLONASS, 193–199
// QZSS, 201–264 BeiDou (SiRF TriG's GB talker, testdata/beidou-gb.log), 301–336
// Galileo, the rest GPS (and SBAS, which augments it).
func legacyPRNSystem(prn string) System {
	n := 0
	for _, c := range prn {
		if c < '0' || c > '9' {
			return GPS
		}
		n = n*10 + int(c-'0')
		if n > 1000 {
			return GPS
		}
	}
	switch {
	case n >= 65 && n <= 96:
		return GLONASS
	case n >= 193 && n <= 199:
		return QZSS
	case n >= 201 && n <= 264:
		return BeiDou
	case n >= 301 && n <= 336:
		return Galileo
	}
	return GPS
}
