package appliance

import (
	"fmt"
	"net/netip"
	"strings"

	"lifeline/dicom/dimse"
)

// dicomLimits checks the limits of the box's DICOM port ([dicom]).
func (c *checker) dicomLimits(d DICOMSection) {
	if _, err := allowedNetworks(d.AllowedAddresses); err != nil {
		c.fail("dicom.allowed_addresses", "%v", err)
	}
	c.positive("dicom.max_connections", d.MaxConnections)
	c.positive("dicom.max_connections_per_address", d.MaxConnectionsPerAddress)
	c.positive("dicom.max_associations_per_ae", d.MaxAssociationsPerAE)
	if d.MaxConnections > 0 && d.MaxConnections < d.MaxAssociations {
		c.fail("dicom.max_connections", "%d is less than dicom.max_associations (%d): every association is a connection",
			d.MaxConnections, d.MaxAssociations)
	}
	c.positiveDuration("dicom.store_idle_limit", d.StoreIdleLimit)
	c.positiveDuration("dicom.max_association_life", d.MaxAssociationLife)
}

// allowedNetworks parses dicom.allowed_addresses: IP addresses ("10.20.0.17") and
// networks ("10.20.0.0/24"), IPv4 or IPv6.
func allowedNetworks(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or network such as 10.20.0.17 or 10.20.0.0/24", s)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or network such as 10.20.0.17 or 10.20.0.0/24", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// scpConfig is the receiver's configuration from [dicom], which validate has checked.
func (d DICOMSection) scpConfig() dimse.SCPConfig {
	nets, _ := allowedNetworks(d.AllowedAddresses)
	return dimse.SCPConfig{
		AETitle:                  d.AETitle,
		CallingAEs:               d.AllowedCalling,
		AllowedNetworks:          nets,
		MaxConnections:           d.MaxConnections,
		MaxConnectionsPerAddress: d.MaxConnectionsPerAddress,
		MaxAssociations:          d.MaxAssociations,
		MaxAssociationsPerAE:     d.MaxAssociationsPerAE,
		StoreIdleLimit:           d.StoreIdleLimit.Duration,
		MaxLife:                  d.MaxAssociationLife.Duration,
	}
}
