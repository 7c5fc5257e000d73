package telemetry

import (
	"encoding/json"
	"math"
	"net/http"
	"time"
)

// Vital is one element of GET /api/v1/vitals: the four fields DESIGN.md promises, and
// optional fields that keep the channels of one code apart.
type Vital struct {
	Code  string  `json:"code"`  // MDC reference id, e.g. MDC_ECG_HEART_RATE; see NameOf
	Value float64 `json:"value"` // in Unit
	Unit  string  `json:"unit"`  // UCUM
	Time  string  `json:"time"`  // RFC 3339, the monitor's clock when it has one

	Label  string `json:"label,omitempty"`  // what clinicians read: HR, SpO2, T
	Source string `json:"source,omitempty"` // the monitor on the box, e.g. its port
	// Channel is the monitor's channel ID (HL7 OBX-4, Datex slot, IntelliVue handle);
	// ChannelLabel is what the monitor shows for it.
	Channel      string `json:"channel,omitempty"`
	ChannelLabel string `json:"channel_label,omitempty"`
	// Primary marks the one value of each code a consumer wanting "the" heart rate
	// takes (PrimaryOf). With one channel per code it is always set.
	Primary bool `json:"primary,omitempty"`
	// Invalid is set when the monitor flagged the value questionable (artifact, sensor
	// off); show it as such, not as a measurement.
	Invalid bool `json:"invalid,omitempty"`
}

// Vitals converts the latest numerics for the API, leaving out values that cannot be
// represented in JSON (NaN, ±Inf: a monitor's "no value").
func Vitals(latest []LatestValue) []Vital {
	out := make([]Vital, 0, len(latest))
	for _, l := range latest {
		n := l.Numeric
		if math.IsNaN(n.Value) || math.IsInf(n.Value, 0) {
			continue
		}
		v := Vital{Code: NameOf(n.Code, n.Ref), Value: n.Value, Unit: n.Unit, Time: n.Time().UTC().Format(time.RFC3339Nano),
			Source: l.Source, Channel: n.Channel.ID, ChannelLabel: n.Channel.Label, Primary: l.Primary, Invalid: n.Invalid}
		if q, ok := Lookup(n.Code); ok {
			v.Label = q.Label
		}
		out = append(out, v)
	}
	return out
}

// VitalsHandler serves GET /api/v1/vitals from the bus: a JSON array (never null) of the
// latest numerics, one per source, code and channel. With ?primary=1 it serves only the
// primary value of each code.
func VitalsHandler(b *Bus) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		latest := b.LatestValues()
		switch r.URL.Query().Get("primary") {
		case "", "0", "false":
		case "1", "true":
			kept := latest[:0]
			for _, l := range latest {
				if l.Primary {
					kept = append(kept, l)
				}
			}
			latest = kept
		default:
			http.Error(w, "vitals: query parameter primary must be 1, true, 0 or false", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(Vitals(latest))
	})
}
