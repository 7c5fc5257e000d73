package appliance

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"lifeline/internal/trust"
)

// DICOMCAPath serves the certificate (PEM) of the box's DICOM TLS authority, which a
// modality verifying the box (DICOM TLS) must trust; it is public by nature.
const DICOMCAPath = "/api/v1/dicom-tls/ca.pem"

// dicomTLSDir holds the box's DICOM TLS authority and server certificate.
func dicomTLSDir(dataDir string) string { return filepath.Join(dataDir, "dicom-tls") }

// openDICOMTLS makes (or loads) the receiver's server certificate for the names the
// modalities may dial, and serves its authority's certificate to the operator. It
// needs no enrolment: the box's DICOM port is its own, not the hub's.
func (e *Edge) openDICOMTLS() (*trust.DICOMServer, error) {
	host, _ := os.Hostname()
	listen := e.cfg.DICOM.Listen
	srv, err := trust.OpenDICOMServer(dicomTLSDir(e.dataDir), host, func() []string { return dicomHosts(listen) })
	if err != nil {
		return nil, err
	}
	e.mux.HandleFunc("GET "+DICOMCAPath, func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, srv.CAFile())
	})
	e.log.Info("DICOM TLS: give the modalities this authority to trust", "ca_file", srv.CAFile(), "url_path", DICOMCAPath,
		"names", append(srv.Leaf().DNSNames, ipStrings(srv.Leaf().IPAddresses)...))
	return srv, nil
}

// dicomHosts returns what the receiver's certificate must name for listen: the
// listening address itself, or every address of the machine when it listens on all
// of them, and the host name (with localhost for loopback), so that a modality
// checking the name it dialled finds it.
func dicomHosts(listen string) []string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	var out []string
	if name, err := os.Hostname(); err == nil && name != "" {
		out = append(out, name)
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil && host != "":
		out = append(out, host) // a host name in the config
	case ip != nil && !ip.IsUnspecified():
		out = append(out, ip.String())
		if ip.IsLoopback() {
			out = append(out, "localhost")
		}
	default:
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
				out = append(out, n.IP.String())
			}
		}
		out = append(out, "localhost")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}
