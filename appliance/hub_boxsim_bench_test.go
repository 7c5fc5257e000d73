//go:build bench

package appliance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/quic-go/quic-go/http3"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/durable"
	"lifeline/internal/service"
	"lifeline/internal/trust"
	"lifeline/stream/vitals"
	"lifeline/stream/whip"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/physio"
)

// A simulated box is a box's two loads on its hub, made by the box's own code where
// there is one: an HL7 monitor simulator (12 leads at 500 Hz, pleth, numerics every
// second, as `lifeline demo`'s monitor) read by the box's HL7 driver onto a telemetry
// bus, the vitals Outbox on its own store, and the WHIP publisher carrying the vitals
// channels to the hub (no camera); and CT instances of 525 KB sent by the upload
// protocol over HTTP/3 with the box's enrolled identity, each in one request as the
// forwarder sends it at its default chunk size (512 KiB, the small tail riding along):
// a creation with upload that also completes it. Instances arrive as a Poisson
// process.

// boxSimCTRows is the size of a slice: 512×512 16-bit pixels, 525 KB as a Part 10 file.
const boxSimCTRows = 512

// boxSimStudySize is the instances of one study: after the last, the box sends the
// study's manifest and expects the hub to hold it whole.
const boxSimStudySize = 100

// boxSimParallel is how many instances one box sends at once (forward.parallel).
const boxSimParallel = 8

// simBox is one simulated box.
type simBox struct {
	id      *trust.Identity
	hubURL  string
	rate    float64 // instances per second
	pixels  []byte
	client  *http.Client
	enc     *zstd.Encoder
	pub     *whip.Publisher
	outbox  *vitals.Outbox
	measure *boxSimWindow

	studies, instances, failures, busy atomic.Int64
	lastErr                            atomic.Value // string
}

// boxSimWindow collects the latencies of appends that start inside the measured window.
type boxSimWindow struct {
	open atomic.Bool
	mu   sync.Mutex
	lat  []time.Duration
}

func (w *boxSimWindow) note(d time.Duration) {
	if !w.open.Load() {
		return
	}
	w.mu.Lock()
	w.lat = append(w.lat, d)
	w.mu.Unlock()
}

// startSimBox starts box id's monitor, outbox, publisher and uploads; they stop with ctx.
func startSimBox(ctx context.Context, wg *sync.WaitGroup, id *trust.Identity, hubURL, dir string, rate float64, pixels []byte, w *boxSimWindow) (*simBox, error) {
	store, err := durable.Open(filepath.Join(dir, "box.db"), 0)
	if err != nil {
		return nil, err
	}
	bus := telemetry.NewBus(nil)
	outbox, err := vitals.NewOutbox(vitals.OutboxConfig{Store: store, Bus: bus, Device: id.DeviceID})
	if err != nil {
		store.Close()
		return nil, err
	}
	ls := &liveStream{outbox: outbox}
	pub, err := whip.New(whip.Config{Endpoint: hubURL + hubWHIPPath, TLS: id.ClientTLS(), DataChannels: ls.dataChannels(), Loopback: true})
	if err != nil {
		store.Close()
		return nil, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		store.Close()
		return nil, err
	}
	tr := &http3.Transport{TLSClientConfig: id.ClientTLS()}
	b := &simBox{id: id, hubURL: hubURL, rate: rate, pixels: pixels, pub: pub, outbox: outbox, measure: w, enc: enc,
		client: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
	monitorEnd, driverEnd, err := monitorCable()
	if err != nil {
		store.Close()
		return nil, err
	}
	sim := hl7.NewSimulator(hl7.SimConfig{Scenario: &physio.Scenario{HR: 84, NIBPEvery: time.Minute},
		Leads: telemetry.ECG12, ECGRate: 500})
	driver := hl7.New(hl7.Config{})
	var inner sync.WaitGroup
	run := func(f func()) { inner.Add(1); go func() { defer inner.Done(); f() }() }
	run(func() { _ = outbox.Run(ctx) })
	run(func() { _ = pub.Run(ctx, new(service.Health)) })
	run(func() { _ = sim.Run(ctx, hl7.ConnPort(monitorEnd)) })
	tl := &telemetry.Timeline{} // as the box's monitor session places every wave
	run(func() {
		_ = driver.Run(ctx, hl7.ConnPort(driverEnd), telemetry.SinkFunc(func(ev telemetry.Event) {
			if w, ok := ev.(*telemetry.Wave); ok {
				tl.Place(w)
			}
			bus.Publish("monitor0", ev)
		}))
	})
	run(func() { b.upload(ctx) })
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		monitorEnd.Close()
		driverEnd.Close()
		inner.Wait()
		tr.Close()
		store.Close()
	}()
	return b, nil
}

// upload sends instances as a Poisson process of b.rate per second, at most
// boxSimParallel at once, and a manifest after every boxSimStudySize.
func (b *simBox) upload(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x1f1e))
	slots := make(chan struct{}, boxSimParallel)
	var sent sync.WaitGroup
	defer sent.Wait()
	for study := 1; ; study++ {
		studyUID := fmt.Sprintf("1.2.826.0.1.3680043.10.1818.%d.%d.%d", boxSimNumber(b.id.DeviceID), time.Now().UnixMilli(), study)
		manifest := make([]manifestInstance, boxSimStudySize)
		var studyWG sync.WaitGroup
		for i := range boxSimStudySize {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(rng.ExpFloat64() / b.rate * float64(time.Second))):
			}
			select {
			case <-ctx.Done():
				return
			case slots <- struct{}{}:
			}
			sent.Add(1)
			studyWG.Add(1)
			go func() {
				defer func() { <-slots; studyWG.Done(); sent.Done() }()
				mi, err := b.sendInstance(ctx, studyUID, i+1)
				if err != nil {
					if ctx.Err() == nil {
						b.failures.Add(1)
						b.lastErr.Store(err.Error())
					}
					return
				}
				manifest[i] = mi
				b.instances.Add(1)
			}()
		}
		studyWG.Wait()
		if slices.ContainsFunc(manifest, func(m manifestInstance) bool { return m.SOP == "" }) {
			continue // the failure is counted; the hub cannot hold this study whole
		}
		if err := b.sendManifest(ctx, studyUID, manifest); err != nil {
			if ctx.Err() == nil {
				b.failures.Add(1)
				b.lastErr.Store(err.Error())
			}
			continue
		}
		b.studies.Add(1)
	}
}

// boxSimNumber is the number in a device ID "BOX-7": a UID component must be digits.
func boxSimNumber(device string) int {
	n, _ := strconv.Atoi(device[len("BOX-"):])
	return n
}

type manifestInstance struct {
	SOP    string `json:"sop_instance_uid"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

// sendInstance sends instance n of studyUID as the forwarder sends a CT slice: one
// creation with upload carrying the whole file, zstd-compressed when that saves a
// tenth, which completes it. The request's latency is noted, through any 429s.
func (b *simBox) sendInstance(ctx context.Context, studyUID string, n int) (manifestInstance, error) {
	sop := fmt.Sprintf("%s.1.%d", studyUID, n)
	data := pacstest.Part10(pacstest.Dataset{SOPClassUID: pacstest.CTImageStorage, SOPInstanceUID: sop,
		StudyUID: studyUID, SeriesUID: studyUID + ".1", Modality: "CT", PatientID: b.id.DeviceID,
		PatientName: "BENCH^PATIENT", InstanceNumber: n, Rows: boxSimCTRows, Columns: boxSimCTRows, Pixels: b.pixels})
	sum := sha256.Sum256(data)
	body, encoding := data, ""
	if z := b.enc.EncodeAll(data, make([]byte, 0, len(data)/2)); len(z) < len(data)*9/10 {
		body, encoding = z, "zstd"
	}
	bodySum := sha256.Sum256(body)
	start := time.Now()
	resp, answer, err := b.do(ctx, func() *http.Request {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.hubURL+"/api/v1/uploads", bytes.NewReader(body))
		req.Header.Set("Upload-Length", strconv.Itoa(len(data)))
		req.Header.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
		req.Header.Set("Dicom-SOP-Instance-UID", sop)
		req.Header.Set("Dicom-Study-Instance-UID", studyUID)
		req.Header.Set("Dicom-SOP-Class-UID", pacstest.CTImageStorage)
		req.Header.Set("Dicom-Transfer-Syntax-UID", pacstest.ExplicitVRLittleEndian)
		req.Header.Set("Upload-Complete", "?1")
		req.Header.Set("Content-Type", "application/partial-upload")
		req.Header.Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(bodySum[:])+":")
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		return req
	})
	if err != nil {
		return manifestInstance{}, err
	}
	b.measure.note(time.Since(start))
	if resp.StatusCode != http.StatusOK {
		return manifestInstance{}, fmt.Errorf("creation with upload of %s: %s %s", sop, resp.Status, answer)
	}
	var stored struct {
		Stored bool `json:"stored"`
	}
	if err := json.Unmarshal(answer, &stored); err != nil || !stored.Stored {
		return manifestInstance{}, fmt.Errorf("creation with upload of %s: the hub did not say it stored it: %s", sop, answer)
	}
	return manifestInstance{SOP: sop, Size: len(data), SHA256: hex.EncodeToString(sum[:])}, nil
}

// sendManifest declares the study and checks that the hub holds it whole.
func (b *simBox) sendManifest(ctx context.Context, studyUID string, instances []manifestInstance) error {
	body, _ := json.Marshal(map[string]any{"study_uid": studyUID, "patient_id": b.id.DeviceID, "modality": "CT",
		"calling_ae": "BENCH_CT", "priority": "routine", "instances": instances})
	resp, answer, err := b.do(ctx, func() *http.Request {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, b.hubURL+"/api/v1/studies/"+studyUID+"/manifest", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return req
	})
	if err != nil {
		return err
	}
	var receipt struct {
		Complete bool `json:"complete"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(answer, &receipt) != nil || !receipt.Complete {
		return fmt.Errorf("manifest of %s: %s %s", studyUID, resp.Status, answer)
	}
	return nil
}

// do sends the request newReq makes and, while the hub answers 429 (more appends or
// manifests in progress than it allows), sends it again after its Retry-After, as the
// box's forwarder does.
func (b *simBox) do(ctx context.Context, newReq func() *http.Request) (*http.Response, []byte, error) {
	for {
		resp, err := b.client.Do(newReq())
		if err != nil {
			return nil, nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusTooManyRequests {
			return resp, body, err
		}
		b.busy.Add(1)
		wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Duration(max(wait, 1)) * time.Second):
		}
	}
}
