package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lifeline/dicom/transfer"
	"lifeline/internal/linkemu"
)

// Addresses of the product processes inside the namespaces. The hub serves HTTPS and
// HTTP/3 on the link; status pages and the box's C-STORE SCP stay on loopback.
const (
	hubPort      = 8443
	hubStatus    = "127.0.0.1:8781"
	edgeHTTP     = "127.0.0.1:8780"
	edgeDICOM    = "127.0.0.1:11112"
	benchDevice  = "BENCH-BOX-01"
	modalityAE   = "CT01"
	boxAETitle   = "LIFELINE"
	orthancTitle = "ORTHANC"
)

// statusPage is the part of /api/v1/status the benchmark reads.
type statusPage struct {
	Overall  string `json:"overall"`
	Services []struct {
		Name      string          `json:"name"`
		State     string          `json:"state"`
		Detail    string          `json:"detail"`
		LastError string          `json:"last_error"`
		Details   json.RawMessage `json:"details"`
	} `json:"services"`
}

func (s *statusPage) service(name string) (state string, details json.RawMessage) {
	for _, x := range s.Services {
		if x.Name == name {
			return x.State, x.Details
		}
	}
	return "", nil
}

func getStatus(ctx context.Context, c *http.Client, addr string) (*statusPage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st statusPage
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("status of %s: %w", addr, err)
	}
	return &st, nil
}

// runOurs measures path (a): storescu → `lifeline edge` (C-STORE SCP, spool,
// forwarder) in the box namespace → QUIC across the link → `lifeline hub` (ingest) →
// Orthanc, all in the hub namespace. The clock starts when storescu starts and stops
// when Orthanc holds every instance of the study.
func runOurs(ctx context.Context, e *env, s *study, link *linkemu.Link, dir string) (*result, error) {
	r := &result{path: "ours"}
	orth, err := startOrthanc(ctx, link, e.orthanc, dir)
	if err != nil {
		return nil, err
	}
	defer orth.stop()

	hubAddr := link.HubAddr().String()
	pacsLine := fmt.Sprintf("dimse = \"%s@127.0.0.1:%d\"", orthancTitle, orthancDICOM)
	if e.deliver == "stow" {
		pacsLine = fmt.Sprintf("stow_url = \"http://127.0.0.1:%d/dicom-web\"", orthancHTTP)
	}
	hubConf := filepath.Join(dir, "hub.toml")
	if err := os.WriteFile(hubConf, fmt.Appendf(nil, "[server]\nlisten = \"%s:%d\"\nnames = [%q]\n[status]\nlisten = %q\n[pacs]\n%s\n",
		hubAddr, hubPort, hubAddr, hubStatus, pacsLine), 0o600); err != nil {
		return nil, err
	}
	edgeConf := filepath.Join(dir, "edge.toml")
	// The product's defaults: study_quiet_period and every [forward] key stay unset.
	// One default is changed, and the report says so: the live stream is off, as on
	// a clinic's box without a camera. With it on, the forwarder yields the uplink to
	// the video (edge_stream_rate.go), which is not what (b) competes with.
	if err := os.WriteFile(edgeConf, fmt.Appendf(nil, "[http]\nlisten = %q\n[hub]\nurl = \"https://%s:%d\"\n[dicom]\nlisten = %q\nae_title = %q\n[stream]\nenabled = false\n",
		edgeHTTP, hubAddr, hubPort, edgeDICOM, boxAETitle), 0o600); err != nil {
		return nil, err
	}
	hubData, edgeData := filepath.Join(dir, "hub-data"), filepath.Join(dir, "edge-data")

	// Enrolment as an operator does it: a one-time code from the hub, used by the box
	// across the link.
	out, err := runCmd(ctx, 30*time.Second, e.lifeline, "hub", "enroll", "--data", hubData, "--config", hubConf, "--device", benchDevice)
	if err != nil {
		return nil, fmt.Errorf("lifeline hub enroll: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	code := strings.TrimSpace(lines[len(lines)-1])

	hub, err := startProc("hub", dir, link.Command(linkemu.Hub, e.lifeline, "hub", "--config", hubConf, "--data", hubData))
	if err != nil {
		return nil, err
	}
	defer hub.stop(10 * time.Second)
	hubHTTP := nsClient(link, linkemu.Hub)
	err = waitUntil(ctx, "lifeline hub ready", 30*time.Second, func() (bool, error) {
		if hub.exited() {
			return false, fmt.Errorf("lifeline hub exited: %s", hub.tail())
		}
		st, err := getStatus(ctx, hubHTTP, hubStatus)
		if err != nil {
			return false, err
		}
		state, _ := st.service("ingest")
		return state == "ready", fmt.Errorf("ingest is %q", state)
	})
	if err != nil {
		return nil, err
	}
	enrol := link.CommandContext(ctx, linkemu.Box, e.lifeline, "edge", "enroll", "--config", edgeConf, "--data", edgeData, "--code", code)
	if out, err := enrol.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("lifeline edge enroll (across the link): %v: %s", err, out)
	}
	edge, err := startProc("edge", dir, link.Command(linkemu.Box, e.lifeline, "edge", "--config", edgeConf, "--data", edgeData))
	if err != nil {
		return nil, err
	}
	defer edge.stop(10 * time.Second)
	edgeClient := nsClient(link, linkemu.Box)
	err = waitUntil(ctx, "lifeline edge ready", 30*time.Second, func() (bool, error) {
		if edge.exited() {
			return false, fmt.Errorf("lifeline edge exited: %s", edge.tail())
		}
		st, err := getStatus(ctx, edgeClient, edgeHTTP)
		if err != nil {
			return false, err
		}
		rcv, _ := st.service("dicom-receiver")
		fwd, _ := st.service("forwarder")
		return rcv == "ready" && fwd == "ready", fmt.Errorf("receiver %q, forwarder %q", rcv, fwd)
	})
	if err != nil {
		return nil, err
	}

	// The clock starts with the modality.
	host, port, _ := strings.Cut(edgeDICOM, ":")
	args := append([]string{"-aet", modalityAE, "-aec", boxAETitle}, e.storescuArgs(s)...)
	args = append(args, "+sd", host, port, s.Dir)
	t0 := time.Now()
	outages := scheduleOutages(ctx, link, e.outages, t0)
	defer outages.stop()
	uplink := watchUplink(link)
	send := link.CommandContext(ctx, linkemu.Box, e.storescu, args...)
	if out, err := send.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("storescu → box: %v: %s", err, lastLines(string(out), 10))
	}
	r.local = time.Since(t0)

	deadline := t0.Add(e.timeout(s, link.Profile()))
	err = waitUntil(ctx, "Orthanc holding the study sent through the box", time.Until(deadline), func() (bool, error) {
		if edge.exited() || hub.exited() {
			return false, fmt.Errorf("a product process exited (edge log %s, hub log %s)", edge.log, hub.log)
		}
		n, err := orth.count(ctx)
		return err == nil && n >= len(s.Files), err
	})
	if err != nil {
		return nil, err
	}
	r.total = time.Since(t0)
	r.outages = outages.stop()
	r.link = link.Stats()
	r.ipBusy, r.ipBytes = uplink.stop()

	// What the box and the hub say about it.
	est, err := getStatus(ctx, edgeClient, edgeHTTP)
	if err != nil {
		return nil, err
	}
	_, raw := est.service("forwarder")
	var fs transfer.ForwarderStatus
	if err := json.Unmarshal(raw, &fs); err != nil {
		return nil, fmt.Errorf("box's forwarder status: %w", err)
	}
	r.wire, r.resent, r.restarts = fs.WireBytes, fs.ResentBytes, fs.RestartsFromZero
	hst, err := getStatus(ctx, hubHTTP, hubStatus)
	if err != nil {
		return nil, err
	}
	_, raw = hst.service("ingest")
	var is transfer.IngestStatus
	if err := json.Unmarshal(raw, &is); err != nil {
		return nil, fmt.Errorf("hub's ingest status: %w", err)
	}
	r.duplicates, r.corrupt = is.Duplicates, is.CorruptChunks
	r.verifyErr = orth.verify(ctx, s)
	return r, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
