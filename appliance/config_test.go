package appliance

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEdgeConfigErrorsNameFileAndKey(t *testing.T) {
	cases := []edgeConfigError{
		{"unknown key", "[dicom]\naetitle = \"X\"\n", "dicom.aetitle", "unknown key"},
		{"unknown section", "[dicomm]\nlisten = \"127.0.0.1:1\"\n", "dicomm", "unknown key"},
		{"wrong type", "[dicom]\nlisten = 11112\n", "dicom.listen", "incompatible types"},
		{"bad address", "[dicom]\nlisten = \"11112\"\n", "dicom.listen", "not a host:port"},
		{"bad port", "[http]\nlisten = \"127.0.0.1:99999\"\n", "http.listen", "port"},
		{"plain http hub", "[hub]\nurl = \"http://hub:8443\"\n", "hub.url", "https only"},
		{"plain http fallback hub", "[hub]\nfallback_urls = [\"http://hub-b:8443\"]\n", "hub.fallback_urls", "https only"},
		{"fallback hub twice", "[hub]\nurl = \"https://hub-a:8443\"\nfallback_urls = [\"https://hub-b:8443\", \"https://hub-a:8443/\"]\n", "hub.fallback_urls", "named twice"},
		{"long AE title", "[dicom]\nae_title = \"THIS_IS_TOO_LONG_AE\"\n", "dicom.ae_title", "1 to 16"},
		{"bad protocol", "[[monitor]]\nport = \"/dev/ttyUSB0\"\nprotocol = \"hl8\"\n", "monitor.protocol", "not one of"},
		{"datex over tcp", "[[monitor]]\nport = \"tcp://127.0.0.1:2575\"\nprotocol = \"datex\"\n", "monitor.protocol", "only hl7 runs over TCP"},
		{"unknown port scheme", "[[monitor]]\nport = \"udp://127.0.0.1:2575\"\nprotocol = \"hl7\"\n", "monitor.port", "unknown scheme"},
		{"tcp port without address", "[[monitor]]\nport = \"tcp-connect://\"\nprotocol = \"hl7\"\n", "monitor.port", "tcp-connect://"},
		{"monitor without port", "[[monitor]]\nprotocol = \"nonin\"\n", "monitor.port", "empty"},
		{"monitor port open to all", "[[monitor]]\nport = \"tcp://0.0.0.0:2575\"\nprotocol = \"hl7\"\n", "monitor.allow", "listens beyond loopback"},
		{"monitor allow not an address", "[[monitor]]\nport = \"tcp://0.0.0.0:2575\"\nprotocol = \"hl7\"\nallow = [\"bedside-7\"]\n", "monitor.allow", "neither an IP address nor a prefix"},
		{"monitor allow on a serial port", "[[monitor]]\nport = \"/dev/ttyUSB0\"\nprotocol = \"auto\"\nallow = [\"10.0.0.1\"]\n", "monitor.allow", "only for a tcp://"},
		{"bad duration", "[dicom]\nstudy_quiet_period = \"soon\"\n", "dicom.study_quiet_period", "duration"},
		{"bad terminal", "[dispatch]\nterminal_id = \"ABC\"\n", "dispatch.terminal_id", "digits"},
		{"syntax", "[dicom\n", "", "line"},
	}
	checkEdgeConfigErrors(t, cases)
}

func TestMissingConfigFile(t *testing.T) {
	_, err := LoadEdgeConfig("/nonexistent/edge.toml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/edge.toml") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("got %v", err)
	}
}

func TestDefaultsAreLoopback(t *testing.T) {
	e, err := LoadEdgeConfig("")
	if err != nil {
		t.Fatal(err)
	}
	h, err := LoadHubConfig("")
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{e.HTTP.Listen, e.DICOM.Listen, h.Server.Listen, h.Status.Listen} {
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("default %s is not loopback", addr)
		}
	}
	if e.DICOM.AETitle != "LIFELINE" || e.DICOM.Listen != "127.0.0.1:11112" || e.HTTP.Listen != "127.0.0.1:8780" ||
		h.Server.Listen != "127.0.0.1:8443" || h.Status.Listen != "127.0.0.1:8781" {
		t.Fatal("defaults differ from DESIGN.md")
	}
}

// The shipped example configs must load, and must mention every key, so that the
// operator's documentation cannot drift from the program.
func TestExampleConfigsCompleteAndValid(t *testing.T) {
	for _, c := range []struct {
		file string
		typ  reflect.Type
		load func(string) error
	}{
		{"../edge.example.toml", reflect.TypeOf(EdgeConfig{}), func(p string) error { _, err := LoadEdgeConfig(p); return err }},
		{"../hub.example.toml", reflect.TypeOf(HubConfig{}), func(p string) error { _, err := LoadHubConfig(p); return err }},
	} {
		if err := c.load(c.file); err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		text, _ := os.ReadFile(c.file)
		for _, key := range tomlKeys(c.typ, "") {
			leaf := key[strings.LastIndex(key, ".")+1:]
			if !strings.Contains(string(text), leaf+" =") {
				t.Errorf("%s does not document %s", c.file, key)
			}
		}
	}
}

func TestHubPACSTarget(t *testing.T) {
	path := writeConfig(t, "[pacs]\ndimse = \"ORTHANC127.0.0.1:4242\"\n")
	if _, err := LoadHubConfig(path); err == nil || !strings.Contains(err.Error(), "AET@host:port") {
		t.Fatalf("got %v", err)
	}
	path = writeConfig(t, "[pacs]\ndimse = \"ORTHANC@127.0.0.1:4242\"\nstow_url = \"http://127.0.0.1:8042/dicom-web\"\n")
	if _, err := LoadHubConfig(path); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("both targets: %v", err)
	}
	path = writeConfig(t, "[pacs]\ndimse = \"ORTHANC@127.0.0.1:4242\"\n")
	if _, err := LoadHubConfig(path); err != nil {
		t.Fatal(err)
	}
}

// TestSelfTestLeavesNetworkMonitorsOut: a monitor reached over TCP (either direction) is
// not a serial port the self-test should miss; a serial one that is absent is named.
func TestSelfTestLeavesNetworkMonitorsOut(t *testing.T) {
	present := map[string]bool{"/dev/ttyUSB0": true}
	got := missingSerialPorts([]string{"tcp://127.0.0.1:2575", "tcp-connect://gateway:2575", "/dev/ttyUSB0", "/dev/ttyUSB7", ""}, present)
	if len(got) != 1 || got[0] != "/dev/ttyUSB7" {
		t.Errorf("missing ports %q, want only /dev/ttyUSB7", got)
	}
}

// TestPositionConfigErrors: every bad [gnss], [modem] and [dispatch] value names the
// file and its key.
func TestPositionConfigErrors(t *testing.T) {
	cases := []edgeConfigError{
		{"bad usb", "[gnss]\nport = \"/dev/ttyACM0\"\nusb = \"1546-01a8\"\n", "gnss.usb", "VID:PID"},
		{"usb without port", "[modem]\nusb = \"2c7c:0801\"\n", "modem.port", "port is empty"},
		{"usb empty serial", "[gnss]\nport = \"/dev/ttyACM0\"\nusb = \"1546:01a8:\"\n", "gnss.usb", "VID:PID"},
		{"negative baud", "[gnss]\nport = \"/dev/ttyACM0\"\nbaud = -1\n", "gnss.baud", "baud"},
		{"network port", "[modem]\nport = \"tcp://127.0.0.1:1\"\n", "modem.port", "serial device"},
		{"modem poll", "[modem]\nport = \"/dev/ttyUSB2\"\npoll = \"-1s\"\n", "modem.poll", "negative"},
		{"bad server", "[dispatch]\nserver = \"dispatch\"\nterminal_id = \"1\"\n", "dispatch.server", "host:port"},
		{"server without terminal", "[dispatch]\nserver = \"127.0.0.1:7808\"\n", "dispatch.terminal_id", "phone number"},
		{"bad edition", "[dispatch]\nedition = \"2011\"\n", "dispatch.edition", "not one of"},
		{"bad edition type", "[dispatch]\nedition = true\n", "dispatch.edition", "edition"},
		{"2013 terminal too long", "[dispatch]\nedition = 2013\nterminal_id = \"0138001380001\"\n", "dispatch.terminal_id", "12 digits"},
		{"2019 terminal too long", "[dispatch]\nterminal_id = \"012345678901234567890\"\n", "dispatch.terminal_id", "20 digits"},
		{"interval too short", "[dispatch]\ninterval = \"500ms\"\n", "dispatch.interval", "at least 1s"},
		{"interval not a duration", "[dispatch]\ninterval = 5\n", "dispatch.interval", ""},
		{"destination without name", "[dispatch.destination]\nlat = 23.1\nlon = 113.2\n", "dispatch.destination.name", "needs a name"},
		{"destination latitude", "[dispatch.destination]\nname = \"H\"\nlat = 93.1\nlon = 113.2\n", "dispatch.destination.lat", "latitude"},
		{"destination longitude", "[dispatch.destination]\nname = \"H\"\nlat = 23.1\nlon = 213.2\n", "dispatch.destination.lon", "longitude"},
		{"destination without point", "[dispatch.destination]\nname = \"H\"\n", "dispatch.destination.lat", "lat and lon"},
		{"unknown destination key", "[dispatch.destination]\nlatitude = 1.0\n", "dispatch.destination.latitude", "unknown key"},
	}
	checkEdgeConfigErrors(t, cases)
}

func TestPositionConfigDefaultsAndValues(t *testing.T) {
	path := writeConfig(t, "[gnss]\nport = \"/dev/ttyACM0\"\nusb = \"1546:01A8:ABC123\"\n[dispatch]\nserver = \"127.0.0.1:7808\"\n"+
		"terminal_id = \"013800138000\"\nedition = 2013\n[dispatch.destination]\nname = \"ED\"\nlat = 23.13\nlon = 113.26\n")
	cfg, err := LoadEdgeConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if id := usbID(cfg.GNSS.USB); id.VID != "1546" || id.PID != "01a8" || id.Serial != "ABC123" {
		t.Errorf("usb %+v", id)
	}
	if cfg.Dispatch.Edition.JT808() != 2013 || cfg.Dispatch.ReportInterval() != 5*time.Second {
		t.Errorf("edition %v interval %s", cfg.Dispatch.Edition.JT808(), cfg.Dispatch.ReportInterval())
	}
	if d := cfg.Dispatch.destination(); d == nil || d.Name != "ED" || d.Lat != 23.13 || d.Lon != 113.26 {
		t.Errorf("destination %+v", d)
	}
	def, _ := LoadEdgeConfig("")
	if def.Dispatch.Edition.JT808() != 2019 || def.Dispatch.destination() != nil {
		t.Errorf("defaults: edition %v destination %+v", def.Dispatch.Edition.JT808(), def.Dispatch.destination())
	}
}

// edgeConfigError is a box config that must be refused: the key it names and words of
// the problem.
type edgeConfigError struct{ name, body, key, problem string }

// checkEdgeConfigErrors loads each config and wants one line naming the file, the key
// and the problem.
func checkEdgeConfigErrors(t *testing.T, cases []edgeConfigError) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.body)
			_, err := LoadEdgeConfig(path)
			ce, ok := err.(*ConfigError)
			if !ok {
				t.Fatalf("want *ConfigError, got %T %v", err, err)
			}
			msg := ce.Error()
			if ce.File != path || ce.Key != c.key || !strings.Contains(msg, c.problem) || strings.Contains(msg, "\n") {
				t.Fatalf("got file %q key %q message %q", ce.File, ce.Key, msg)
			}
		})
	}
}
