// Package transfer moves DICOM instances from the box to the hub over HTTP/3 with
// resumable uploads (after draft-ietf-httpbis-resumable-upload): the box's Forwarder
// drains the spool's ready queue, the hub's Ingest verifies, archives and delivers.
// dicom/TRANSFER.md is the wire protocol; this file holds its vocabulary and parsers.
package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Paths on the hub. An upload's URL is UploadsPath + "/" + its ID.
const (
	UploadsPath = "/api/v1/uploads"
	StudiesPath = "/api/v1/studies"
)

// Header fields of the protocol.
const (
	hdrUploadOffset   = "Upload-Offset"
	hdrUploadComplete = "Upload-Complete"
	hdrUploadLength   = "Upload-Length"
	hdrReprDigest     = "Repr-Digest"
	hdrContentDigest  = "Content-Digest"
	hdrInterop        = "Upload-Draft-Interop-Version"
	hdrSOPInstance    = "Dicom-SOP-Instance-UID"
	hdrSOPClass       = "Dicom-SOP-Class-UID"
	hdrStudy          = "Dicom-Study-Instance-UID"
	hdrTransferSyntax = "Dicom-Transfer-Syntax-UID"

	// interopVersion is the draft revision whose semantics we follow.
	interopVersion = "6"
	// partialUploadType is the media type of an append request's body.
	partialUploadType = "application/partial-upload"
	problemType       = "application/problem+json"
)

// MaxChunk is the largest decoded chunk the hub accepts in one append, and the
// largest encoded body. The hub streams a chunk to a scratch file until its digest
// checks out; it never holds a whole chunk in memory.
const MaxChunk = 4 << 20

// Problem types (RFC 9457 "type" members) the hub answers with. The box decides
// whether to retry, resume or dead-letter from these alone.
const (
	ProblemChunkDigest    = "urn:lifeline:transfer:chunk-digest-mismatch" // resend the chunk
	ProblemOffset         = "urn:lifeline:transfer:offset-mismatch"       // resume at Upload-Offset
	ProblemDigest         = "urn:lifeline:transfer:digest-mismatch"       // whole file wrong: start again
	ProblemInvalidDICOM   = "urn:lifeline:transfer:invalid-dicom"         // dead-letter
	ProblemConflict       = "urn:lifeline:transfer:conflict"              // dead-letter
	ProblemBadRequest     = "urn:lifeline:transfer:bad-request"           // dead-letter
	ProblemUnknownUpload  = "urn:lifeline:transfer:unknown-upload"        // create it again
	ProblemForbidden      = "urn:lifeline:transfer:forbidden"             // box not allowed: pause
	ProblemBusy           = "urn:lifeline:transfer:busy"                  // too much at once: retry later
	ProblemInternalFailed = "urn:lifeline:transfer:internal"              // retry later
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}

// ParseProblem decodes a problem details body.
func ParseProblem(body []byte) (*Problem, error) {
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("problem details: %w", err)
	}
	if p.Type == "" {
		return nil, errors.New("problem details without a type")
	}
	return &p, nil
}

// FormatDigest renders a SHA-256 digest as an RFC 9530 Repr-Digest / Content-Digest
// field value: a structured-field dictionary with one byte-sequence member.
func FormatDigest(sum []byte) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum) + ":"
}

// ContentDigest returns the Content-Digest field value for body.
func ContentDigest(body []byte) string {
	s := sha256.Sum256(body)
	return FormatDigest(s[:])
}

// ParseDigest extracts the sha-256 member of an RFC 9530 digest field value. Other
// algorithms may be listed; they are ignored, but sha-256 must be among them.
func ParseDigest(v string) ([]byte, error) {
	if len(v) > 1024 {
		return nil, errors.New("digest field longer than 1024 bytes")
	}
	for _, member := range strings.Split(v, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(member), "=")
		if !ok {
			return nil, fmt.Errorf("digest member %q has no value", member)
		}
		if strings.TrimSpace(key) != "sha-256" {
			continue
		}
		val = strings.TrimSpace(val)
		// Parameters (";...") are allowed on dictionary members; none is defined.
		val, _, _ = strings.Cut(val, ";")
		if len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
			return nil, fmt.Errorf("sha-256 digest %q is not a byte sequence (:base64:)", val)
		}
		sum, err := base64.StdEncoding.DecodeString(val[1 : len(val)-1])
		if err != nil {
			return nil, fmt.Errorf("sha-256 digest: %w", err)
		}
		if len(sum) != sha256.Size {
			return nil, fmt.Errorf("sha-256 digest has %d bytes, want 32", len(sum))
		}
		return sum, nil
	}
	return nil, errors.New("digest field has no sha-256 member")
}

// ParseOffset reads Upload-Offset or Upload-Length: a non-negative decimal integer.
func ParseOffset(v string) (int64, error) {
	if v == "" {
		return 0, errors.New("missing")
	}
	if len(v) > 18 || strings.TrimLeft(v, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a non-negative integer", v)
	}
	return strconv.ParseInt(v, 10, 64)
}

// ParseBool reads a structured-field boolean (?1 or ?0), as Upload-Complete is.
func ParseBool(v string) (bool, error) {
	switch strings.TrimSpace(v) {
	case "?1":
		return true, nil
	case "?0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a structured boolean (?0 or ?1)", v)
}

func formatBool(b bool) string {
	if b {
		return "?1"
	}
	return "?0"
}

// ValidUID checks a DICOM UID (PS3.5 §9): digits and dots, at most 64 characters,
// no empty component, no leading zero in a component. The hub uses UIDs in file
// names, so this is also what keeps paths inside the archive.
func ValidUID(uid string) error {
	if uid == "" || len(uid) > 64 {
		return fmt.Errorf("UID %q: length must be 1..64", uid)
	}
	for _, comp := range strings.Split(uid, ".") {
		if comp == "" || strings.TrimLeft(comp, "0123456789") != "" {
			return fmt.Errorf("UID %q: components must be decimal numbers", uid)
		}
		if len(comp) > 1 && comp[0] == '0' {
			return fmt.Errorf("UID %q: component %q has a leading zero", uid, comp)
		}
	}
	return nil
}

// ManifestInstance is one instance a study manifest lists.
type ManifestInstance struct {
	SOPInstanceUID string `json:"sop_instance_uid"`
	Size           int64  `json:"size"`
	SHA256         string `json:"sha256"` // hex
}

// Manifest lists the instances that make a study whole.
type Manifest struct {
	StudyUID    string             `json:"study_uid"`
	PatientID   string             `json:"patient_id,omitempty"`
	PatientName string             `json:"patient_name,omitempty"`
	Modality    string             `json:"modality,omitempty"`
	CallingAE   string             `json:"calling_ae,omitempty"`
	Priority    string             `json:"priority,omitempty"`
	Instances   []ManifestInstance `json:"instances"`
}

// maxManifest bounds a manifest body: 100 000 instances at ~150 bytes each.
const maxManifest = 16 << 20

// ParseManifest decodes and checks a manifest body.
func ParseManifest(body []byte) (*Manifest, error) {
	if len(body) > maxManifest {
		return nil, fmt.Errorf("manifest of %d bytes exceeds %d", len(body), maxManifest)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := ValidUID(m.StudyUID); err != nil {
		return nil, fmt.Errorf("manifest: study: %w", err)
	}
	if len(m.Instances) == 0 {
		return nil, errors.New("manifest lists no instances")
	}
	seen := make(map[string]bool, len(m.Instances))
	for i, in := range m.Instances {
		if err := ValidUID(in.SOPInstanceUID); err != nil {
			return nil, fmt.Errorf("manifest instance %d: %w", i, err)
		}
		if seen[in.SOPInstanceUID] {
			return nil, fmt.Errorf("manifest lists instance %s twice", in.SOPInstanceUID)
		}
		seen[in.SOPInstanceUID] = true
		if in.Size < 0 {
			return nil, fmt.Errorf("manifest instance %s: negative size", in.SOPInstanceUID)
		}
		if b, err := hex.DecodeString(in.SHA256); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("manifest instance %s: sha256 %q is not 64 hex digits", in.SOPInstanceUID, in.SHA256)
		}
	}
	return &m, nil
}

// StudyReceipt is the hub's answer to a manifest: what it holds of the study.
type StudyReceipt struct {
	StudyUID string   `json:"study_uid"`
	Expected int      `json:"expected"`
	Stored   int      `json:"stored"`
	Missing  []string `json:"missing,omitempty"`
	// Quarantined lists the instances the hub holds apart for an operator, because
	// its archive holds their SOP Instance UIDs with other content. They count as
	// stored: the hub holds them durably, and the box need not send them again.
	Quarantined []string `json:"quarantined,omitempty"`
	Complete    bool     `json:"complete"`
}
