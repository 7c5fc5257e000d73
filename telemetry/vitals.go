package telemetry

import (
	"encoding/json"
	"math"
	"net/http"
	"time"
)

// Vital is one element of GET /api/v1/vitals, exactly as DESIGN.md promises.
type Vital struct {
	Code  string  `json:"code"`  // MDC reference id, e.g. MDC_ECG_HEART_RATE
	Value float64 `json:"value"` // in Unit
	Unit  string  `json:"unit"`  // UCUM
	Time  string  `json:"time"`  // RFC 3339, the monitor's clock when it has one
}

// Vitals converts the latest numerics for the API, leaving out values that cannot be
// represented in JSON (NaN, ±Inf: a monitor's "no value").
func Vitals(latest []*Numeric) []Vital {
	out := make([]Vital, 0, len(latest))
	for _, n := range latest {
		if math.IsNaN(n.Value) || math.IsInf(n.Value, 0) {
			continue
		}
		out = append(out, Vital{Code: n.Code.Name(), Value: n.Value, Unit: n.Unit, Time: n.Time().UTC().Format(time.RFC3339Nano)})
	}
	return out
}

// VitalsHandler serves GET /api/v1/vitals from the bus: a JSON array (never null) of the
// latest numerics. The lead mounts it on the box's HTTP server.
func VitalsHandler(b *Bus) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(Vitals(b.Latest()))
	})
}
