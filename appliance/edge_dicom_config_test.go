package appliance

import (
	"net/netip"
	"testing"
	"time"
)

// TestDICOMLimitsConfig: every limit of the DICOM port reaches the receiver, the
// defaults are those SECURITY.md documents, and a bad value names its key.
func TestDICOMLimitsConfig(t *testing.T) {
	def, err := LoadEdgeConfig("")
	if err != nil {
		t.Fatal(err)
	}
	d := def.DICOM.scpConfig()
	if d.MaxConnections != 32 || d.MaxConnectionsPerAddress != 4 || d.MaxAssociations != 8 || d.MaxAssociationsPerAE != 4 ||
		d.StoreIdleLimit != 5*time.Minute || d.MaxLife != time.Hour || len(d.AllowedNetworks) != 0 {
		t.Errorf("default receiver limits %+v", d)
	}
	path := writeConfig(t, "[dicom]\nallowed_addresses = [\"10.20.0.17\", \"10.20.1.9/24\", \"fd00::1\"]\nmax_connections = 10\n"+
		"max_connections_per_address = 2\nmax_associations = 3\nmax_associations_per_ae = 1\nstore_idle_limit = \"90s\"\nmax_association_life = \"4h\"\n")
	cfg, err := LoadEdgeConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.DICOM.scpConfig()
	want := []netip.Prefix{netip.MustParsePrefix("10.20.0.17/32"), netip.MustParsePrefix("10.20.1.0/24"), netip.MustParsePrefix("fd00::1/128")}
	if len(got.AllowedNetworks) != 3 || got.AllowedNetworks[0] != want[0] || got.AllowedNetworks[1] != want[1] || got.AllowedNetworks[2] != want[2] {
		t.Errorf("allowed networks %v, want %v", got.AllowedNetworks, want)
	}
	if got.MaxConnections != 10 || got.MaxConnectionsPerAddress != 2 || got.MaxAssociations != 3 || got.MaxAssociationsPerAE != 1 ||
		got.StoreIdleLimit != 90*time.Second || got.MaxLife != 4*time.Hour {
		t.Errorf("receiver limits %+v", got)
	}

	checkEdgeConfigErrors(t, []edgeConfigError{
		{"bad address", "[dicom]\nallowed_addresses = [\"10.20.0\"]\n", "dicom.allowed_addresses", "not an address or network"},
		{"bad network", "[dicom]\nallowed_addresses = [\"10.20.0.0/33\"]\n", "dicom.allowed_addresses", "not an address or network"},
		{"zero connections", "[dicom]\nmax_connections = 0\n", "dicom.max_connections", "greater than 0"},
		{"fewer connections than associations", "[dicom]\nmax_connections = 4\nmax_associations = 8\n", "dicom.max_connections", "every association is a connection"},
		{"zero per address", "[dicom]\nmax_connections_per_address = 0\n", "dicom.max_connections_per_address", "greater than 0"},
		{"zero per AE", "[dicom]\nmax_associations_per_ae = -1\n", "dicom.max_associations_per_ae", "greater than 0"},
		{"no store idle", "[dicom]\nstore_idle_limit = \"0s\"\n", "dicom.store_idle_limit", "positive"},
		{"no life", "[dicom]\nmax_association_life = \"-1h\"\n", "dicom.max_association_life", "positive"},
	})
}
