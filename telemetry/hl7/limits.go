package hl7

import (
	"bytes"
	"errors"
	"fmt"
)

// What one message may make the box build. The byte limit (MaxMessage) alone does not
// bound the parser's work: it builds a slice per field, per repetition and per
// component, so a message made only of separators cost up to 234 bytes of allocation
// per byte (a 1 MiB run of '|' allocated 234 MiB). These counts keep the parse of the
// largest message a monitor sends well inside its allowance, and make the cost of the
// worst message a few MiB (TestParseAllocationBounded measures it).
//
// The yardstick is a 12-lead ECG ORU^R01 (PCD-01) with 1 s of each lead at 500 Hz:
// about 40 segments, 700 fields, no repetitions and 6,000 sample components; at
// 1000 Hz, 12,000. The limits leave room for that at twice the rate or a 2 s block.
const (
	// MaxSegments bounds the segments (CR or LF separated lines; CRLF counts twice).
	MaxSegments = 1024
	// MaxFields bounds the field separators in the whole message.
	MaxFields = 8192
	// MaxRepetitions bounds the repetition separators in the whole message; PCD-01
	// monitors send hardly any.
	MaxRepetitions = 1024
	// MaxComponents bounds the component separators in the whole message: the
	// samples of every waveform block are components.
	MaxComponents = 32768
)

// ErrTooComplex reports a message with more segments, fields, repetitions or
// components than the limits above.
var ErrTooComplex = errors.New("hl7: message has more parts than a monitor sends")

// checkShape counts the separators of raw, as the message's own header declares them,
// and refuses it before parsing when a count is over its limit. A message without a
// readable header is left for Parse to refuse.
func checkShape(raw []byte) error {
	raw = bytes.TrimLeft(raw, "\r\n\t ")
	if len(raw) < 8 || string(raw[:3]) != "MSH" {
		return nil
	}
	field, comp, rep := raw[3], byte('^'), byte('~')
	if enc := raw[4:]; len(enc) > 0 && enc[0] != field {
		comp = enc[0]
		if len(enc) > 1 && enc[1] != field {
			rep = enc[1]
		}
	}
	var lines, fields, reps, comps int
	for _, b := range raw {
		switch b {
		case '\r', '\n':
			lines++
		case field:
			fields++
		case comp:
			comps++
		case rep:
			reps++
		}
	}
	for _, c := range []struct {
		what     string
		n, limit int
	}{{"segments", lines + 1, MaxSegments}, {"fields", fields, MaxFields}, {"repetitions", reps, MaxRepetitions}, {"components", comps, MaxComponents}} {
		if c.n > c.limit {
			return fmt.Errorf("%w: %d %s, at most %d", ErrTooComplex, c.n, c.what, c.limit)
		}
	}
	return nil
}

// parseBounded parses raw as Parse does, after checking that its shape is within the
// limits, so that what the parser allocates stays bounded whatever a peer sends.
func parseBounded(raw []byte) (*Message, error) {
	if err := checkShape(raw); err != nil {
		return nil, err
	}
	return Parse(raw)
}
