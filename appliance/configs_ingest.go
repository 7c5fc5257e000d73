package appliance

import "lifeline/dicom/transfer"

// IngestSection bounds what boxes may make the hub hold at once while they upload
// studies (dicom/TRANSFER.md). Requests over a bound are refused with 429 and
// retried by the box; see SECURITY.md.
type IngestSection struct {
	// MaxAppendsPerBox is how many chunk appends one box may have in progress.
	MaxAppendsPerBox int `toml:"max_appends_per_box"`
	// MaxAppends is how many chunk appends all boxes together may have in progress;
	// each may hold a scratch file of up to 4 MiB on disk.
	MaxAppends int `toml:"max_appends"`
	// DeliveryLease is how long a hub's claim on a delivery to the PACS holds when
	// hubs share their state: a batch's delivery must end within three quarters of
	// it, and the deliveries a hub held when it died wait as long for another hub.
	DeliveryLease Duration `toml:"delivery_lease"`
}

func defaultIngest() IngestSection {
	return IngestSection{MaxAppendsPerBox: transfer.DefaultMaxAppendsPerBox, MaxAppends: transfer.DefaultMaxAppends,
		DeliveryLease: Duration{transfer.DefaultDeliveryLease}}
}

func (c *checker) ingest(s IngestSection) {
	c.positive("ingest.max_appends_per_box", s.MaxAppendsPerBox)
	c.positive("ingest.max_appends", s.MaxAppends)
	c.positiveDuration("ingest.delivery_lease", s.DeliveryLease)
	if s.MaxAppends > 0 && s.MaxAppendsPerBox > s.MaxAppends {
		c.fail("ingest.max_appends_per_box", "%d is more than ingest.max_appends (%d)", s.MaxAppendsPerBox, s.MaxAppends)
	}
}
