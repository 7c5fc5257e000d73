package appliance

import (
	"strings"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/monitor"
	"lifeline/telemetry/protocols"
)

// EdgeConfig is the box's configuration (edge.toml). Its zero file — no file at all —
// is a box that serves on loopback and waits for enrolment.
type EdgeConfig struct {
	HTTP     HTTPSection     `toml:"http"`
	Hub      HubLink         `toml:"hub"`
	DICOM    DICOMSection    `toml:"dicom"`
	Forward  ForwardSection  `toml:"forward"`
	Monitor  []MonitorConfig `toml:"monitor"`
	Stream   StreamSection   `toml:"stream"` // configs_stream.go
	Camera   []CameraConfig  `toml:"camera"`
	GNSS     GNSSSection     `toml:"gnss"`     // configs_dispatch.go
	Modem    ModemSection    `toml:"modem"`    // configs_dispatch.go
	Dispatch DispatchSection `toml:"dispatch"` // configs_dispatch.go
	Log      LogSection      `toml:"log"`

	file string
}

// HTTPSection is where a process serves /healthz, /metrics and /api/v1.
type HTTPSection struct {
	Listen string `toml:"listen"`
}

// HubLink is how the box reaches its hub. Several hubs on one shared state
// (docs/multi-hub.md) are one hub to the box: it uses URL, and when that hub is out
// of reach moves to the next of FallbackURLs in order, and on round.
type HubLink struct {
	URL          string   `toml:"url"`
	FallbackURLs []string `toml:"fallback_urls"`
}

// URLs lists the hub's addresses in the order the box tries them.
func (l HubLink) URLs() []string { return append([]string{l.URL}, l.FallbackURLs...) }

// hubLink checks [hub]: every address an https URL, none twice.
func (c *checker) hubLink(l HubLink) {
	c.httpsURL("hub.url", l.URL)
	seen := map[string]bool{strings.TrimRight(l.URL, "/"): true}
	for _, u := range l.FallbackURLs {
		c.httpsURL("hub.fallback_urls", u)
		if seen[strings.TrimRight(u, "/")] {
			c.fail("hub.fallback_urls", "%q is named twice among hub.url and hub.fallback_urls", u)
		}
		seen[strings.TrimRight(u, "/")] = true
	}
}

// DICOMSection configures the box's DICOM receiver (C-STORE SCP).
type DICOMSection struct {
	Listen          string   `toml:"listen"`
	AETitle         string   `toml:"ae_title"`
	AllowedCalling  []string `toml:"allowed_calling_ae"` // empty: any calling AE
	MaxAssociations int      `toml:"max_associations"`
	QuietPeriod     Duration `toml:"study_quiet_period"` // a study is complete after this long without a new instance
	MinFreeMB       int      `toml:"min_free_mb"`        // below this, C-STORE answers 0xA700 out of resources
	TLS             bool     `toml:"tls"`                // DICOM TLS with the box's certificate
	// Limits of the DICOM port (edge_dicom_config.go checks them; SECURITY.md says why).
	AllowedAddresses         []string `toml:"allowed_addresses"` // IPs or CIDRs that may connect; empty: any
	MaxConnections           int      `toml:"max_connections"`
	MaxConnectionsPerAddress int      `toml:"max_connections_per_address"`
	MaxAssociationsPerAE     int      `toml:"max_associations_per_ae"`
	StoreIdleLimit           Duration `toml:"store_idle_limit"`     // C-ECHO does not count
	MaxAssociationLife       Duration `toml:"max_association_life"` // ended after the message in progress
}

// ForwardSection configures forwarding to the hub.
type ForwardSection struct {
	MaxRateMbit   float64  `toml:"max_rate_mbit"` // 0: no cap
	Parallel      int      `toml:"parallel"`
	StatModality  []string `toml:"stat_modalities"`   // forwarded before routine studies
	StatCallingAE []string `toml:"stat_calling_aes"`  // likewise, by sender
	RetryMax      Duration `toml:"retry_max_backoff"` // cap of the retry back-off
}

// MonitorConfig is one patient monitor cabled to the box.
type MonitorConfig struct {
	// Port is a serial device; a USB adapter is found again by its VID/PID/serial
	// after it is re-plugged under another name. For HL7/MLLP over the network,
	// tcp://host:port makes the box listen for the monitor, tcp-connect://host:port
	// makes it dial out.
	Port     string `toml:"port"`
	Protocol string `toml:"protocol"` // a name in telemetry/protocols (hl7 | nonin | datex | intellivue) or auto
	// Allow lists the addresses or prefixes a monitor may connect from on a tcp://
	// port; empty admits this machine only, and a tcp:// port beyond loopback needs it.
	Allow []string `toml:"allow"`
}

// LogSection sets logging.
type LogSection struct {
	Level  string `toml:"level"`  // debug | info | warn | error
	Format string `toml:"format"` // auto | json | text
}

// DefaultEdgeConfig returns the box's defaults: everything on loopback.
func DefaultEdgeConfig() EdgeConfig {
	return EdgeConfig{
		HTTP: HTTPSection{Listen: "127.0.0.1:8780"},
		Hub:  HubLink{URL: "https://127.0.0.1:8443"},
		DICOM: DICOMSection{
			Listen:                   "127.0.0.1:11112",
			AETitle:                  "LIFELINE",
			MaxAssociations:          8,
			QuietPeriod:              Duration{30 * time.Second},
			MinFreeMB:                512,
			MaxConnections:           32,
			MaxConnectionsPerAddress: 4,
			MaxAssociationsPerAE:     4,
			StoreIdleLimit:           Duration{5 * time.Minute},
			MaxAssociationLife:       Duration{time.Hour},
		},
		Stream:  defaultStream(),
		Forward: ForwardSection{Parallel: 8, StatModality: []string{"ECG"}, RetryMax: Duration{5 * time.Minute}},
		Log:     LogSection{Level: "info", Format: "auto"},
	}
}

// LoadEdgeConfig reads path over the defaults; an empty path means defaults only.
func LoadEdgeConfig(path string) (EdgeConfig, error) {
	cfg := DefaultEdgeConfig()
	if path != "" {
		if err := loadTOML(path, &cfg); err != nil {
			return cfg, err
		}
	}
	cfg.file = path
	return cfg, cfg.validate()
}

func (cfg *EdgeConfig) validate() error {
	c := &checker{file: cfg.file}
	c.hostPort("http.listen", cfg.HTTP.Listen)
	c.hubLink(cfg.Hub)
	c.hostPort("dicom.listen", cfg.DICOM.Listen)
	c.aeTitle("dicom.ae_title", cfg.DICOM.AETitle)
	for _, ae := range cfg.DICOM.AllowedCalling {
		c.aeTitle("dicom.allowed_calling_ae", ae)
	}
	c.positive("dicom.max_associations", cfg.DICOM.MaxAssociations)
	c.dicomLimits(cfg.DICOM)
	c.positiveDuration("dicom.study_quiet_period", cfg.DICOM.QuietPeriod)
	if cfg.DICOM.MinFreeMB < 0 {
		c.fail("dicom.min_free_mb", "must not be negative, got %d", cfg.DICOM.MinFreeMB)
	}
	if cfg.Forward.MaxRateMbit < 0 {
		c.fail("forward.max_rate_mbit", "must not be negative, got %g", cfg.Forward.MaxRateMbit)
	}
	c.positive("forward.parallel", cfg.Forward.Parallel)
	c.positiveDuration("forward.retry_max_backoff", cfg.Forward.RetryMax)
	for _, m := range cfg.Monitor {
		c.monitor(m)
	}
	c.stream(cfg.Stream, cfg.Camera)
	c.position(cfg.GNSS, cfg.Modem, cfg.Dispatch)
	c.logSection(cfg.Log)
	return c.err
}

// monitor checks one [[monitor]]: its port through the one parser of port settings,
// and its protocol against the one list of protocols.
func (c *checker) monitor(m MonitorConfig) {
	ep, err := telemetry.ParseEndpoint(m.Port)
	if err != nil {
		c.fail("monitor.port", "%v", err)
	}
	if m.Protocol != protocols.Auto {
		p, ok := protocols.Lookup(m.Protocol)
		if !ok {
			c.oneOf("monitor.protocol", m.Protocol, append(protocols.Names(), protocols.Auto)...)
		} else if err == nil && ep.Network() && !p.Network {
			c.fail("monitor.protocol", "%q over the network: only %s runs over TCP", m.Protocol, strings.Join(protocols.NetworkNames(), ", "))
		}
	}
	allow, aerr := monitor.ParseAllow(m.Allow)
	if aerr != nil {
		c.fail("monitor.allow", "%v", aerr)
	} else if err == nil {
		if err := monitor.CheckAllow(ep, allow); err != nil {
			c.fail("monitor.allow", "%v", err)
		}
	}
}

func (c *checker) logSection(l LogSection) {
	c.oneOf("log.level", l.Level, "debug", "info", "warn", "error")
	c.oneOf("log.format", l.Format, "auto", "json", "text")
}

// HubConfig is the hub's configuration (hub.toml).
type HubConfig struct {
	Server HubServer        `toml:"server"`
	Viewer ViewerSection    `toml:"viewer"` // configs_viewer.go
	Stream HubStreamSection `toml:"stream"` // configs_stream.go
	Status HTTPSection      `toml:"status"`
	PACS   PACSSection      `toml:"pacs"`
	Ingest IngestSection    `toml:"ingest"` // configs_ingest.go
	Enrol  EnrolConfig      `toml:"enrol"`
	State  StateSection     `toml:"state"` // hub_state.go
	Log    LogSection       `toml:"log"`

	file string
}

// HubServer is the hub's public side: HTTPS on TCP and HTTP/3 on UDP, same port.
type HubServer struct {
	Listen string   `toml:"listen"`
	Names  []string `toml:"names"` // host names and addresses boxes use to reach the hub
	// CertFile and KeyFile are the hospital's certificate for browsers, served on
	// the viewer listener (configs_viewer.go says why there); boxes keep pinning the
	// hub's own authority on Listen.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// PACSSection names where the hub delivers studies. With neither set, studies stay in
// the hub's embedded archive.
type PACSSection struct {
	STOWURL string `toml:"stow_url"` // DICOMweb STOW-RS base, e.g. http://pacs:8042/dicom-web
	DIMSE   string `toml:"dimse"`    // C-STORE target as AET@host:port
	AETitle string `toml:"ae_title"` // our calling AE title for C-STORE
}

// EnrolConfig sets enrolment policy.
type EnrolConfig struct {
	CodeLifetime Duration `toml:"code_lifetime"`
}

// DefaultHubConfig returns the hub's defaults: loopback only, embedded archive.
func DefaultHubConfig() HubConfig {
	return HubConfig{
		Server: HubServer{Listen: "127.0.0.1:8443", Names: []string{"127.0.0.1", "localhost"}},
		Viewer: defaultViewer(),
		Stream: defaultHubStream(),
		Status: HTTPSection{Listen: "127.0.0.1:8781"},
		PACS:   PACSSection{AETitle: "LIFELINEHUB"},
		Ingest: defaultIngest(),
		Enrol:  EnrolConfig{CodeLifetime: Duration{24 * time.Hour}},
		Log:    LogSection{Level: "info", Format: "auto"},
	}
}

// LoadHubConfig reads path over the defaults; an empty path means defaults only.
func LoadHubConfig(path string) (HubConfig, error) {
	cfg := DefaultHubConfig()
	if path != "" {
		if err := loadTOML(path, &cfg); err != nil {
			return cfg, err
		}
	}
	cfg.file = path
	return cfg, cfg.validate()
}

func (cfg *HubConfig) validate() error {
	c := &checker{file: cfg.file}
	c.hostPort("server.listen", cfg.Server.Listen)
	if len(cfg.Server.Names) == 0 {
		c.fail("server.names", "name at least one host name or address that boxes use to reach the hub")
	}
	c.viewer(cfg.Viewer, cfg.Server)
	c.hubStream(cfg.Stream)
	c.hostPort("status.listen", cfg.Status.Listen)
	if cfg.PACS.STOWURL != "" {
		c.httpURL("pacs.stow_url", cfg.PACS.STOWURL)
	}
	if cfg.PACS.STOWURL != "" && cfg.PACS.DIMSE != "" {
		c.fail("pacs.dimse", "set either pacs.stow_url or pacs.dimse, not both")
	}
	if cfg.PACS.DIMSE != "" {
		ae, addr, ok := strings.Cut(cfg.PACS.DIMSE, "@")
		if !ok {
			c.fail("pacs.dimse", "%q is not AET@host:port", cfg.PACS.DIMSE)
		} else {
			c.aeTitle("pacs.dimse", ae)
			c.hostPort("pacs.dimse", addr)
		}
	}
	c.aeTitle("pacs.ae_title", cfg.PACS.AETitle)
	c.ingest(cfg.Ingest)
	c.positiveDuration("enrol.code_lifetime", cfg.Enrol.CodeLifetime)
	c.state(cfg.State)
	c.logSection(cfg.Log)
	return c.err
}
