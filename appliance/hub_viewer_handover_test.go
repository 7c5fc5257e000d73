package appliance

import (
	"errors"
	"strings"
	"testing"
)

// TestViewerPublicURL: [viewer] public_url is where other hubs send this hub's
// doctors: an https origin, given without a path; unset, the viewer's own address.
func TestViewerPublicURL(t *testing.T) {
	for _, c := range []struct{ value, mention string }{
		{"http://hub-a.example:8444", "not an https URL"},
		{"hub-a.example:8444", "not an https URL"},
		{"https://hub-a.example:8444/ed/", "scheme, host and port only"},
		{"https://hub-a.example:8444/?x=1", "scheme, host and port only"},
		{"https://dr:pw@hub-a.example:8444", "scheme, host and port only"},
	} {
		path := writeConfig(t, "[viewer]\npublic_url = \""+c.value+"\"\n")
		_, err := LoadHubConfig(path)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != "viewer.public_url" || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("public_url %q: %v, want viewer.public_url refused mentioning %q", c.value, err, c.mention)
		}
	}
	cfg, err := LoadHubConfig(writeConfig(t, "[viewer]\npublic_url = \"https://hub-a.example:8444/\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.PublicViewerURL(); got != "https://hub-a.example:8444" {
		t.Errorf("public_url with a trailing slash: %q", got)
	}
	cfg, err = LoadHubConfig(writeConfig(t, "[server]\nlisten = \"127.0.0.1:9443\"\nnames = [\"hub-b.example\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.PublicViewerURL(); got != "https://hub-b.example:9444" {
		t.Errorf("public_url unset: %q, want the first server name on the viewer port", got)
	}
}
