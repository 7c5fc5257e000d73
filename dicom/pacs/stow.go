package pacs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// maxSTOWResponse bounds the response body we read: a STOW-RS answer lists SOP UIDs,
// a few hundred bytes each, so 4 MiB covers thousands of instances.
const maxSTOWResponse = 4 << 20

// STOW delivers by DICOMweb STOW-RS: one multipart/related POST per batch to
// {root}/studies, streaming the Part 10 files from disk.
type STOW struct {
	root   string
	client *http.Client
}

// NewSTOW returns a Deliverer that posts to the DICOMweb root url (for Orthanc
// "http://host:8042/dicom-web"). A nil client means http.DefaultClient.
func NewSTOW(url string, client *http.Client) *STOW {
	if client == nil {
		client = http.DefaultClient
	}
	return &STOW{root: strings.TrimRight(url, "/"), client: client}
}

// Target implements Deliverer.
func (s *STOW) Target() string { return "stow " + s.root }

// Deliver implements Deliverer.
func (s *STOW) Deliver(ctx context.Context, batch []Instance) []error {
	errs := make([]error, len(batch))
	if len(batch) == 0 {
		return errs
	}
	var b [12]byte
	rand.Read(b[:])
	boundary := "lifeline-" + hex.EncodeToString(b[:])
	payload := stowBody{boundary: boundary, batch: batch}
	first, err := payload.open()
	if err != nil {
		return fill(errs, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.root+"/studies", first)
	if err != nil {
		first.Close()
		return fill(errs, fmt.Errorf("stow: %w", err))
	}
	req.ContentLength = payload.length()
	// A PACS that closes an idle keep-alive connection just as the hub reuses it
	// (Orthanc's KeepAliveTimeout is one second) would fail the POST for nothing.
	// Storing an instance again is harmless (the PACS keeps one per SOP Instance
	// UID), so the request is marked replayable, unsent: with GetBody, net/http
	// then retries it once on a fresh connection instead of reporting a failure.
	req.GetBody = payload.open
	req.Header["Idempotency-Key"] = nil
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+boundary)
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fill(errs, fmt.Errorf("stow: POST %s/studies: %w", s.root, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSTOWResponse))
	if err != nil {
		return fill(errs, fmt.Errorf("stow: reading response from %s: %w", s.root, err))
	}
	switch {
	case resp.StatusCode == http.StatusOK, resp.StatusCode == http.StatusAccepted, resp.StatusCode == http.StatusConflict:
		// 202 and 409 carry per-instance outcomes in the same body as 200.
	default:
		return fill(errs, fmt.Errorf("stow: POST %s/studies: %s: %.200s", s.root, resp.Status, body))
	}
	result, err := ParseSTOWResponse(body)
	if err != nil {
		return fill(errs, fmt.Errorf("stow: %s answered %s: %w", s.root, resp.Status, err))
	}
	for i, inst := range batch {
		switch {
		case result.Stored[inst.SOPInstanceUID]:
			errs[i] = nil
		case result.Failed[inst.SOPInstanceUID] != "":
			errs[i] = &RefusedError{SOPInstanceUID: inst.SOPInstanceUID, Reason: result.Failed[inst.SOPInstanceUID]}
		default:
			errs[i] = &RefusedError{SOPInstanceUID: inst.SOPInstanceUID,
				Reason: fmt.Sprintf("not listed in the STOW-RS response (%s)", resp.Status)}
		}
	}
	return errs
}

// stowBody is the multipart/related body of one STOW-RS request, read from the
// instances' files each time it is opened.
type stowBody struct {
	boundary string
	batch    []Instance
}

func (b stowBody) head() string {
	return "--" + b.boundary + "\r\nContent-Type: application/dicom\r\n\r\n"
}
func (b stowBody) tail() string { return "--" + b.boundary + "--\r\n" }

// length is the body's size in bytes, from the instances' recorded sizes.
func (b stowBody) length() int64 {
	n := int64(len(b.tail()))
	for _, inst := range b.batch {
		n += int64(len(b.head())) + inst.Size + 2
	}
	return n
}

// open returns a fresh reader of the body; closing it closes the files.
func (b stowBody) open() (io.ReadCloser, error) {
	var parts []io.Reader
	files := make(filesCloser, 0, len(b.batch))
	for _, inst := range b.batch {
		f, err := os.Open(inst.Path)
		if err != nil {
			files.Close()
			return nil, fmt.Errorf("stow: open %s: %w", inst.Path, err)
		}
		files = append(files, f)
		parts = append(parts, strings.NewReader(b.head()), f, strings.NewReader("\r\n"))
	}
	parts = append(parts, strings.NewReader(b.tail()))
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(parts...), files}, nil
}

type filesCloser []*os.File

func (fs filesCloser) Close() error {
	for _, f := range fs {
		f.Close()
	}
	return nil
}

// STOWResult is what a STOW-RS response says about each instance.
type STOWResult struct {
	Stored map[string]bool   // SOP Instance UIDs in the ReferencedSOPSequence
	Failed map[string]string // SOP Instance UID → failure reason, from FailedSOPSequence
}

// DICOM JSON (PS3.18 §F) tags of the STOW-RS response.
const (
	tagReferencedSOPSequence    = "00081199"
	tagFailedSOPSequence        = "00081198"
	tagReferencedSOPInstanceUID = "00081155"
	tagFailureReason            = "00081197"
)

type jsonAttr struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

// ParseSTOWResponse reads the DICOM JSON body of a STOW-RS response.
func ParseSTOWResponse(body []byte) (STOWResult, error) {
	res := STOWResult{Stored: map[string]bool{}, Failed: map[string]string{}}
	var top map[string]jsonAttr
	if err := json.Unmarshal(body, &top); err != nil {
		return res, fmt.Errorf("STOW-RS response is not a DICOM JSON object: %w", err)
	}
	if top == nil {
		return res, errors.New("STOW-RS response is not a DICOM JSON object")
	}
	items := func(tag string) ([]map[string]jsonAttr, error) {
		var out []map[string]jsonAttr
		for _, raw := range top[tag].Value {
			var item map[string]jsonAttr
			if err := json.Unmarshal(raw, &item); err != nil {
				return nil, fmt.Errorf("STOW-RS response: item of (%s,%s): %w", tag[:4], tag[4:], err)
			}
			out = append(out, item)
		}
		return out, nil
	}
	refs, err := items(tagReferencedSOPSequence)
	if err != nil {
		return res, err
	}
	for _, it := range refs {
		if uid := firstString(it[tagReferencedSOPInstanceUID]); uid != "" {
			res.Stored[uid] = true
		}
	}
	failed, err := items(tagFailedSOPSequence)
	if err != nil {
		return res, err
	}
	for _, it := range failed {
		uid := firstString(it[tagReferencedSOPInstanceUID])
		if uid == "" {
			continue
		}
		reason := "failure reason not given"
		if vals := it[tagFailureReason].Value; len(vals) > 0 {
			var code uint16
			if json.Unmarshal(vals[0], &code) == nil {
				reason = fmt.Sprintf("failure reason 0x%04X", code)
			}
		}
		res.Failed[uid] = reason
	}
	return res, nil
}

func firstString(a jsonAttr) string {
	if len(a.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(a.Value[0], &s) != nil {
		return ""
	}
	return s
}
