// Package gnss reads the box's GNSS receiver: NMEA 0183 sentences (RMC, GGA, GSA,
// GSV, VTG, GNS, ZDA from GPS, GLONASS, Galileo, BeiDou and QZSS talkers, NMEA 4.1 and
// 4.11 fields included) over a serial port, assembled into one Fix per epoch, with
// stale and lost fixes detected within 3 s and GNSS time offered for a box without
// NTP. It also has the receiver simulator (Simulate) that replays a log or drives a
// route. It runs on the box.
package gnss

import (
	"fmt"
	"time"
)

// Quality is the fix quality of GGA (and GNS's mode letters mapped onto it).
type Quality int

// Fix qualities.
const (
	QualityNone Quality = iota
	QualityGPS
	QualityDGPS
	QualityPPS
	QualityRTK
	QualityFloatRTK
	QualityEstimated // dead reckoning
	QualityManual
	QualitySimulated
)

func (q Quality) String() string {
	names := []string{"none", "autonomous", "differential", "PPS", "RTK fixed", "RTK float", "dead reckoning", "manual", "simulated"}
	if int(q) < len(names) {
		return names[q]
	}
	return fmt.Sprintf("quality %d", int(q))
}

// System is a satellite constellation.
type System string

// Constellations, as named in talker IDs and NMEA 4.11 system IDs.
const (
	GPS     System = "GPS"
	GLONASS System = "GLONASS"
	Galileo System = "Galileo"
	BeiDou  System = "BeiDou"
	QZSS    System = "QZSS"
	NavIC   System = "NavIC"
)

// Fix is the receiver's solution for one epoch. Lat and Lon are in Datum, which is
// always WGS-84 as received; GCJ02 gives the converted point for the consumers that
// need it (maps of mainland China).
type Fix struct {
	Time  time.Time // UTC of the epoch, from the receiver
	Valid bool      // the receiver says the position is usable
	Datum Datum
	Lat   float64 // degrees, north positive
	Lon   float64 // degrees, east positive

	AltitudeM  float64 // above mean sea level
	HasAlt     bool
	SpeedKmh   float64
	CourseDeg  float64 // true course over ground
	HasCourse  bool    // course is meaningless when standing still; some receivers leave it empty
	Quality    Quality
	Mode3D     bool // GSA fix type 3
	Satellites int  // in use
	InView     int  // in view, every constellation
	HDOP       float64
	PDOP       float64
	VDOP       float64
	Systems    []System // constellations with satellites in use

	// Received is the box's clock when the epoch's first sentence arrived.
	Received time.Time
}

// GCJ02 returns the position converted to GCJ-02 (unchanged outside China).
func (f Fix) GCJ02() (lat, lon float64) { return ToGCJ02(f.Lat, f.Lon) }

// Uses reports whether constellation s contributed satellites to the fix.
func (f Fix) Uses(s System) bool {
	for _, x := range f.Systems {
		if x == s {
			return true
		}
	}
	return false
}

func (f Fix) String() string {
	if !f.Valid {
		return fmt.Sprintf("no fix (%d satellites in view)", f.InView)
	}
	dim := "2D"
	if f.Mode3D {
		dim = "3D"
	}
	return fmt.Sprintf("%s %s fix %.6f,%.6f (%s), %d satellites, HDOP %.1f", dim, f.Quality, f.Lat, f.Lon, f.Datum, f.Satellites, f.HDOP)
}

// talkerSystem maps an NMEA talker ID to its constellation; GN (combined) and
// unknown talkers give "".
func talkerSystem(talker string) System {
	switch talker {
	case "GP":
		return GPS
	case "GL":
		return GLONASS
	case "GA":
		return Galileo
	case "BD", "GB":
		return BeiDou
	case "GQ", "QZ":
		return QZSS
	case "GI":
		return NavIC
	}
	return ""
}

// systemID maps the NMEA 4.11 GNSS system ID of GSA and GSV.
func systemID(id int64) System {
	switch id {
	case 1:
		return GPS
	case 2:
		return GLONASS
	case 3:
		return Galileo
	case 4:
		return BeiDou
	case 5:
		return QZSS
	case 6:
		return NavIC
	}
	return ""
}
