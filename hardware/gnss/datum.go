package gnss

import "math"

// Datum names the geodetic datum a position is expressed in.
type Datum string

// Datums.
const (
	// WGS84 is what GNSS receivers report and what JT/T 808 carries.
	WGS84 Datum = "WGS-84"
	// GCJ02 is the obfuscated datum that maps of mainland China (AutoNavi/Amap,
	// Tencent) are drawn in; a WGS-84 point plotted on them lands 100–700 m off.
	GCJ02 Datum = "GCJ-02"
)

// The GCJ-02 transform, as published by reverse engineering (widely reproduced,
// e.g. as "eviltransform"): the WGS-84 point is shifted by an offset that is a sum of
// sines in longitude and latitude relative to (105°E, 35°N), scaled onto the
// Krasovsky 1940 ellipsoid. It is defined only inside mainland China; outside (the
// rough bounding box below) points are left unchanged, as the published transform
// does. Its accuracy against the official implementation is about 1 m, which is
// enough to put the ambulance on the right street of a Chinese map, and it is only
// ever applied for display to consumers that ask for GCJ-02.
const (
	krasovskyA  = 6378245.0             // semi-major axis, m
	krasovskyE2 = 0.0066934216229659433 // first eccentricity squared
)

// InChina reports whether the published transform applies at the point (a rough
// bounding box of mainland China, as in the published transform).
func InChina(lat, lon float64) bool {
	return lon >= 72.004 && lon <= 137.8347 && lat >= 0.8293 && lat <= 55.8271
}

func gcjOffsetLat(x, y float64) float64 {
	r := -100 + 2*x + 3*y + 0.2*y*y + 0.1*x*y + 0.2*math.Sqrt(math.Abs(x))
	r += (20*math.Sin(6*x*math.Pi) + 20*math.Sin(2*x*math.Pi)) * 2 / 3
	r += (20*math.Sin(y*math.Pi) + 40*math.Sin(y/3*math.Pi)) * 2 / 3
	r += (160*math.Sin(y/12*math.Pi) + 320*math.Sin(y*math.Pi/30)) * 2 / 3
	return r
}

func gcjOffsetLon(x, y float64) float64 {
	r := 300 + x + 2*y + 0.1*x*x + 0.1*x*y + 0.1*math.Sqrt(math.Abs(x))
	r += (20*math.Sin(6*x*math.Pi) + 20*math.Sin(2*x*math.Pi)) * 2 / 3
	r += (20*math.Sin(x*math.Pi) + 40*math.Sin(x/3*math.Pi)) * 2 / 3
	r += (150*math.Sin(x/12*math.Pi) + 300*math.Sin(x/30*math.Pi)) * 2 / 3
	return r
}

// ToGCJ02 converts a WGS-84 point to GCJ-02.
func ToGCJ02(lat, lon float64) (float64, float64) {
	if !InChina(lat, lon) {
		return lat, lon
	}
	dLat := gcjOffsetLat(lon-105, lat-35)
	dLon := gcjOffsetLon(lon-105, lat-35)
	rad := lat / 180 * math.Pi
	s := math.Sin(rad)
	m := 1 - krasovskyE2*s*s
	sm := math.Sqrt(m)
	dLat = dLat * 180 / ((krasovskyA * (1 - krasovskyE2)) / (m * sm) * math.Pi)
	dLon = dLon * 180 / (krasovskyA / sm * math.Cos(rad) * math.Pi)
	return lat + dLat, lon + dLon
}

// FromGCJ02 converts a GCJ-02 point back to WGS-84. The transform has no closed
// inverse; a few fixed-point iterations bring the error under a millimetre.
func FromGCJ02(lat, lon float64) (float64, float64) {
	if !InChina(lat, lon) {
		return lat, lon
	}
	wLat, wLon := lat, lon
	for i := 0; i < 10; i++ {
		gLat, gLon := ToGCJ02(wLat, wLon)
		eLat, eLon := gLat-lat, gLon-lon
		wLat, wLon = wLat-eLat, wLon-eLon
		if math.Abs(eLat) < 1e-9 && math.Abs(eLon) < 1e-9 {
			break
		}
	}
	return wLat, wLon
}

// DistanceM is the great-circle (haversine) distance in metres between two WGS-84
// points, on a sphere of the mean Earth radius: within 0.5 % of the ellipsoidal
// distance.
func DistanceM(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371008.8
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	a := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}
