package appliance

import (
	"strings"
	"testing"

	"lifeline/dicom/transfer"
)

func TestIngestLimitsConfig(t *testing.T) {
	def, err := LoadHubConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if def.Ingest.MaxAppendsPerBox != transfer.DefaultMaxAppendsPerBox || def.Ingest.MaxAppends != transfer.DefaultMaxAppends {
		t.Errorf("default ingest limits %+v", def.Ingest)
	}
	cfg, err := LoadHubConfig(writeConfig(t, "[ingest]\nmax_appends_per_box = 3\nmax_appends = 30\n"))
	if err != nil || cfg.Ingest.MaxAppendsPerBox != 3 || cfg.Ingest.MaxAppends != 30 {
		t.Fatalf("ingest limits %+v, %v", cfg.Ingest, err)
	}
	for _, c := range []struct{ name, body, key, problem string }{
		{"zero per box", "[ingest]\nmax_appends_per_box = 0\n", "ingest.max_appends_per_box", "greater than 0"},
		{"negative total", "[ingest]\nmax_appends = -1\n", "ingest.max_appends", "greater than 0"},
		{"box above total", "[ingest]\nmax_appends_per_box = 9\nmax_appends = 8\n", "ingest.max_appends_per_box", "more than ingest.max_appends"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.body)
			_, err := LoadHubConfig(path)
			ce, ok := err.(*ConfigError)
			if !ok || ce.File != path || ce.Key != c.key || !strings.Contains(ce.Error(), c.problem) {
				t.Fatalf("got %v, want %s: %s", err, c.key, c.problem)
			}
		})
	}
}
