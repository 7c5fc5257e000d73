package gnss

import (
	"math"
	"testing"
)

// Published pairs of the WGS-84 → GCJ-02 transform:
//   - (40.0, 116.0) → (40.001213650174, 116.006141221789): geoToolbox's pytest
//     (wgs84_to_gcj02 test_data).
//   - (39.9, 116.39) → (39.901400287519685, 116.39623950248456): rio-rgbify's
//     test_gcj_to_wgs, which inverts that GCJ-02 point back to it.
//   - GCJ-02 (45, 123) → WGS-84 (44.99804071, 122.99395597): gcoord's
//     GCJ02.spec.js, to 1e-5.
func TestGCJ02PublishedPairs(t *testing.T) {
	for _, c := range []struct{ lat, lon, gLat, gLon, tol float64 }{
		// geoToolbox differs from the other published implementations by about
		// 1 cm (1e-7°), a difference in its constants; compare to 1e-6° (0.1 m).
		{40.0, 116.0, 40.001213650174, 116.006141221789, 1e-6},
		{39.9, 116.39, 39.901400287519685, 116.39623950248456, 1e-9},
	} {
		gLat, gLon := ToGCJ02(c.lat, c.lon)
		if math.Abs(gLat-c.gLat) > c.tol || math.Abs(gLon-c.gLon) > c.tol {
			t.Errorf("ToGCJ02(%v, %v) = (%.12f, %.12f), want (%.12f, %.12f)", c.lat, c.lon, gLat, gLon, c.gLat, c.gLon)
		}
		wLat, wLon := FromGCJ02(gLat, gLon)
		if math.Abs(wLat-c.lat) > 1e-8 || math.Abs(wLon-c.lon) > 1e-8 {
			t.Errorf("FromGCJ02 round trip (%v, %v) → (%v, %v)", c.lat, c.lon, wLat, wLon)
		}
	}
	wLat, wLon := FromGCJ02(45, 123)
	if math.Abs(wLat-44.99804071) > 1e-5 || math.Abs(wLon-122.99395597) > 1e-5 {
		t.Errorf("FromGCJ02(45, 123) = (%v, %v)", wLat, wLon)
	}
	// Outside China nothing moves.
	if lat, lon := ToGCJ02(51.5, -0.12); lat != 51.5 || lon != -0.12 {
		t.Errorf("London moved to (%v, %v)", lat, lon)
	}
	// The shift is a few hundred metres, as every map user in China knows.
	gLat, gLon := ToGCJ02(23.1291, 113.2644)
	if d := DistanceM(23.1291, 113.2644, gLat, gLon); d < 100 || d > 700 {
		t.Errorf("Guangzhou shifted %v m", d)
	}
}

func TestDistance(t *testing.T) {
	// One degree of latitude is 111.2 km on the mean sphere.
	if d := DistanceM(30, 120, 31, 120); math.Abs(d-111195) > 10 {
		t.Errorf("1° latitude = %v m", d)
	}
}
