package pacstest

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"lifeline/internal/peers"
)

// Orthanc is a real Orthanc process serving on loopback for one test.
type Orthanc struct {
	HTTPURL  string // e.g. http://127.0.0.1:41234
	STOWURL  string // DICOMweb root, e.g. http://127.0.0.1:41234/dicom-web
	DIMSE    string // AET@host:port
	AETitle  string
	DicomAdr string // host:port of its C-STORE SCP
}

// StartOrthanc starts Orthanc with the DICOMweb plugin in a temporary directory and
// stops it when the test ends. It accepts C-STORE from any calling AE title. It skips
// (or, with LIFELINE_REQUIRE_PEERS=1, fails) the test when Orthanc is not installed.
func StartOrthanc(t testing.TB) *Orthanc {
	t.Helper()
	return StartOrthancOn(t, ReservePorts(t))
}

// Ports are the loopback ports an Orthanc will serve on, known before it starts so
// a test can point a client at a PACS that is not up yet.
type Ports struct{ HTTP, DICOM int }

// ReservePorts picks two free loopback TCP ports.
func ReservePorts(t testing.TB) Ports { return Ports{HTTP: freePort(t), DICOM: freePort(t)} }

// STOWURL is the DICOMweb root Orthanc will serve on these ports.
func (p Ports) STOWURL() string { return fmt.Sprintf("http://127.0.0.1:%d/dicom-web", p.HTTP) }

// DIMSE is the C-STORE target Orthanc will answer on these ports.
func (p Ports) DIMSE() string { return fmt.Sprintf("ORTHANC@127.0.0.1:%d", p.DICOM) }

// StartOrthancOn is StartOrthanc on the given ports.
func StartOrthancOn(t testing.TB, ports Ports) *Orthanc {
	t.Helper()
	bin := peers.Need(t, "Orthanc")[0]
	if _, err := os.Stat(peers.OrthancDICOMwebPlugin); err != nil {
		peers.Missing(t, "Orthanc DICOMweb plugin %s is not installed (Debian package orthanc-dicomweb)", peers.OrthancDICOMwebPlugin)
	}
	o := &Orthanc{
		HTTPURL:  fmt.Sprintf("http://127.0.0.1:%d", ports.HTTP),
		AETitle:  "ORTHANC",
		DicomAdr: fmt.Sprintf("127.0.0.1:%d", ports.DICOM),
	}
	o.STOWURL = o.HTTPURL + "/dicom-web"
	o.DIMSE = "ORTHANC@" + o.DicomAdr
	dir := t.TempDir()
	peers.RunOrthanc(t, bin, dir, o.HTTPURL, "Orthanc", config(dir, ports), 20*time.Second)
	return o
}

// StoredInstance is one instance as Orthanc holds it.
type StoredInstance struct {
	ID             string
	SOPInstanceUID string
	MD5            string // of the file Orthanc stored
	DatasetMD5     string // of the data set in that file
}

// Instances lists every instance Orthanc holds, with the MD5 of each stored file.
func (o *Orthanc) Instances(ctx context.Context) ([]StoredInstance, error) {
	var list []struct {
		ID            string            `json:"ID"`
		MainDicomTags map[string]string `json:"MainDicomTags"`
	}
	if err := o.getJSON(ctx, "/instances?expand", &list); err != nil {
		return nil, err
	}
	out := make([]StoredInstance, 0, len(list))
	for _, it := range list {
		file, err := o.get(ctx, "/instances/"+it.ID+"/file")
		if err != nil {
			return nil, err
		}
		m := md5.Sum(file)
		ds, err := DatasetMD5(file)
		if err != nil {
			return nil, fmt.Errorf("orthanc instance %s: %w", it.ID, err)
		}
		out = append(out, StoredInstance{ID: it.ID, SOPInstanceUID: it.MainDicomTags["SOPInstanceUID"],
			MD5: hex.EncodeToString(m[:]), DatasetMD5: ds})
	}
	return out, nil
}

func (o *Orthanc) getJSON(ctx context.Context, path string, v any) error {
	data, err := o.get(ctx, path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func (o *Orthanc) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.HTTPURL+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("orthanc GET %s: %s: %s", path, resp.Status, data)
	}
	return data, nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// OrthancPlugin is where Debian's orthanc-dicomweb package puts the DICOMweb plugin.
const OrthancPlugin = peers.OrthancDICOMwebPlugin

// config is the tests' throw-away Orthanc (peers.OrthancConfig) with its storage under
// dir, as a stand-alone PACS: files on disk, jobs and logs as a site would keep them.
func config(dir string, ports Ports) map[string]any {
	cfg := peers.OrthancConfig("lifeline-test", dir, ports.HTTP, ports.DICOM)
	cfg["HttpsVerifyPeers"] = false
	cfg["StableAge"] = 60
	cfg["DicomServerEnabled"] = true
	cfg["DeidentifyLogs"] = false
	cfg["MaximumStorageCacheSize"] = 0
	cfg["RestApiWriteToFileSystemEnabled"] = false
	return cfg
}

// WriteOrthancConfig writes dir/orthanc.json for a throw-away Orthanc with its storage
// under dir: REST API on loopback only, no authentication, C-STORE accepted from any
// AE title and SOP class, DICOMweb at /dicom-web/, duplicates not overwritten. It
// returns the file's path, to pass to Orthanc as its only argument.
func WriteOrthancConfig(dir string, ports Ports) (string, error) {
	return peers.WriteOrthancConfig(dir, config(dir, ports))
}
