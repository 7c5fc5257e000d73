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
	"os/exec"
	"path/filepath"
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
	cmd      *exec.Cmd
	done     chan struct{}
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
	plugin := OrthancPlugin
	if _, err := os.Stat(plugin); err != nil {
		peers.Missing(t, "Orthanc DICOMweb plugin %s is not installed (Debian package orthanc-dicomweb)", plugin)
	}
	dir := t.TempDir()
	httpPort, dicomPort := ports.HTTP, ports.DICOM
	cfgPath, err := WriteOrthancConfig(dir, ports)
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "orthanc.log"))
	if err != nil {
		t.Fatal(err)
	}
	o := &Orthanc{
		HTTPURL:  fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		AETitle:  "ORTHANC",
		DicomAdr: fmt.Sprintf("127.0.0.1:%d", dicomPort),
		done:     make(chan struct{}),
	}
	o.STOWURL = o.HTTPURL + "/dicom-web"
	o.DIMSE = "ORTHANC@" + o.DicomAdr
	o.cmd = exec.Command(bin, cfgPath)
	o.cmd.Stdout, o.cmd.Stderr = logFile, logFile
	if err := o.cmd.Start(); err != nil {
		t.Fatalf("start Orthanc: %v", err)
	}
	go func() { o.cmd.Wait(); logFile.Close(); close(o.done) }()
	t.Cleanup(func() {
		o.cmd.Process.Kill()
		<-o.done
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "orthanc.log")); err == nil && len(log) > 0 {
				if len(log) > 4000 {
					log = log[len(log)-4000:]
				}
				t.Logf("Orthanc log tail:\n%s", log)
			}
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(o.HTTPURL + "/system")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-o.done:
			t.Fatalf("Orthanc exited during start-up (see its log in %s)", dir)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Orthanc did not answer GET /system within 20 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
const OrthancPlugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

// WriteOrthancConfig writes dir/orthanc.json for a throw-away Orthanc with its storage
// under dir: REST API on loopback only, no authentication, C-STORE accepted from any
// AE title and SOP class, DICOMweb at /dicom-web/, duplicates not overwritten. It
// returns the file's path, to pass to Orthanc as its only argument.
func WriteOrthancConfig(dir string, ports Ports) (string, error) {
	cfg := map[string]any{
		"Name":                            "lifeline-test",
		"StorageDirectory":                filepath.Join(dir, "storage"),
		"IndexDirectory":                  filepath.Join(dir, "index"),
		"HttpPort":                        ports.HTTP,
		"DicomPort":                       ports.DICOM,
		"DicomAet":                        "ORTHANC",
		"RemoteAccessAllowed":             false,
		"AuthenticationEnabled":           false,
		"DicomCheckCalledAet":             false,
		"DicomAlwaysAllowStore":           true,
		"UnknownSopClassAccepted":         true,
		"StorageCompression":              false,
		"HttpsVerifyPeers":                false,
		"ConcurrentJobs":                  1,
		"Plugins":                         []string{OrthancPlugin},
		"DicomWeb":                        map[string]any{"Enable": true, "Root": "/dicom-web/"},
		"StableAge":                       60,
		"SaveJobs":                        false,
		"DicomServerEnabled":              true,
		"DeidentifyLogs":                  false,
		"MaximumStorageCacheSize":         0,
		"OverwriteInstances":              false,
		"RestApiWriteToFileSystemEnabled": false,
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "orthanc.json")
	return path, os.WriteFile(path, data, 0o600)
}
