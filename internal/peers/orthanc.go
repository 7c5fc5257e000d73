package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"lifeline/internal/wait"
)

// OrthancDICOMwebPlugin is where Debian's orthanc-dicomweb package puts its plugin.
const OrthancDICOMwebPlugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

// OrthancConfig is the configuration every throw-away Orthanc of the tests starts
// from: storage under dir, REST API and DICOM on the given loopback ports, no
// authentication, C-STORE accepted from any AE title and SOP class, DICOMweb at
// /dicom-web/, duplicates kept rather than overwritten, no saved jobs. Callers add
// or change keys (plugins, a database) before writing it.
func OrthancConfig(name, dir string, httpPort, dicomPort int) map[string]any {
	return map[string]any{
		"Name":                    name,
		"StorageDirectory":        filepath.Join(dir, "storage"),
		"IndexDirectory":          filepath.Join(dir, "index"),
		"HttpPort":                httpPort,
		"DicomPort":               dicomPort,
		"DicomAet":                "ORTHANC",
		"RemoteAccessAllowed":     false,
		"AuthenticationEnabled":   false,
		"DicomCheckCalledAet":     false,
		"DicomAlwaysAllowStore":   true,
		"UnknownSopClassAccepted": true,
		"StorageCompression":      false,
		"OverwriteInstances":      false,
		"SaveJobs":                false,
		"ConcurrentJobs":          1,
		"Plugins":                 []string{OrthancDICOMwebPlugin},
		"DicomWeb":                map[string]any{"Enable": true, "Root": "/dicom-web/"},
	}
}

// WriteOrthancConfig writes cfg to dir/orthanc.json and returns the file's path, to
// pass to Orthanc as its only argument.
func WriteOrthancConfig(dir string, cfg map[string]any) (string, error) {
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "orthanc.json")
	return path, os.WriteFile(path, data, 0o600)
}

// RunOrthanc writes cfg into dir, starts the Orthanc binary bin on it and waits up to
// startup until its REST API at httpURL answers GET /system. The process is killed
// when the test ends, and its log's tail is logged if the test failed. what names the
// process in messages ("Orthanc", "Orthanc node 1").
func RunOrthanc(t testing.TB, bin, dir, httpURL, what string, cfg map[string]any, startup time.Duration) {
	t.Helper()
	cfgPath, err := WriteOrthancConfig(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "orthanc.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", what, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			if log, err := os.ReadFile(logPath); err == nil && len(log) > 0 {
				t.Logf("%s's log tail:\n%s", what, tail(log, 4000))
			}
		}
	})
	wait.For(t, startup, what+" to answer GET /system", func() bool {
		select {
		case <-done:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited during start-up:\n%s", what, tail(log, 4000))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, httpURL+"/system", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// orthancURL is the REST root of an Orthanc on a loopback port.
func orthancURL(httpPort int) string { return fmt.Sprintf("http://127.0.0.1:%d", httpPort) }
